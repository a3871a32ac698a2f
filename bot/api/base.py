"""What every API endpoint shares: the token's role, JSON errors with a code, reading a body,
changes made once under an ``Idempotency-Key``."""
from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.api.config import API, ApiToken
from bot.appkeys import CONFIG, DB, DISPATCHER
from bot.context import Context
from bot.http import BadJson, BadRequest, busy, control_char_param, dumps, header, parse_json, read_body
from bot.metrics import api_error
from bot.numbers import parse_id, parse_int
from bot.roles import has_role
from bot.update import Update
from storage import audit, idempotency, outbox
from storage.engine import is_transient

log = logging.getLogger("siyu.api")
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TOKEN = web.RequestKey("api_token", ApiToken)
ANSWER = web.RequestKey("api_answer", web.Response)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _json_integer(value: Any) -> Any:
    # JSON Schema counts 5.0 as an integer; a string or a boolean is not one.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field of a request body, as JSON Schema means it.
JsonInt = Annotated[int, BeforeValidator(_json_integer)]


def error(status: int, code: str, message: str) -> web.Response:
    """The JSON error answer; counted in ``/metrics`` (siyu_api_errors_total) by code and status."""
    api_error(code, status)
    return web.json_response({"error": {"code": code, "message": message}}, status=status, dumps=dumps)


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "too_large", 422: "invalid"}


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /api/: every error a client can cause is JSON with a code and a message."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except Replay as exc:
        return exc.response()
    except ApiError as exc:
        return error(exc.status, exc.code, exc.message)
    except BadRequest as exc:
        return error(exc.status, CODES.get(exc.status, "bad_request"), exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        answer = error(exc.status, CODES.get(exc.status, "error"), exc.reason or "error")
        if "Allow" in exc.headers:  # a 405 names the methods there are (RFC 9110)
            answer.headers["Allow"] = exc.headers["Allow"]
        return answer
    except Exception as exc:
        if is_transient(exc):
            log.warning("database busy on %s %s (%s): answered 503", request.method, request.path, type(exc).__name__)
            return busy(error(503, "database_busy", "the database is busy: try again in a moment"))
        log.exception("API error on %s %s", request.method, request.path)
        return error(500, "internal", "internal error; the operator can find it in the log")


def token_of(request: web.Request) -> ApiToken:
    config = request.app[CONFIG]
    scheme, _, given = header(request, "Authorization").partition(" ")
    if not config[API].enabled or scheme.lower() != "bearer" or not given:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <token> with a token from [api] tokens")
    # Compare with every token in constant time: no early exit tells how much matched.
    found = [t for t in config[API].tokens if hmac.compare_digest(t.token.encode(), given.strip().encode())]
    if not found:
        raise ApiError(401, "unauthorized", "unknown token")
    return found[0]


def require(role: str, *, query: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
    """The endpoint needs a token of ``role`` or above, and takes only the ``query`` parameters
    named (an unknown one is a 400, not silently ignored)."""

    def wrap(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            token = token_of(request)
            if not has_role(token.role, role):
                raise ApiError(403, "forbidden", f"this needs a token with the {role} role; yours is {token.role}")
            unknown = sorted(set(request.query) - set(query))
            if unknown:
                raise ApiError(400, "bad_request", f"unknown query parameter(s): {', '.join(unknown)}")
            # Every parameter takes one value: ?limit=7&limit=x is refused, not read as its first.
            repeated = sorted(name for name in set(request.query) if len(request.query.getall(name)) > 1)
            if repeated:
                raise ApiError(400, "bad_request", f"query parameter(s) given more than once: {', '.join(repeated)}")
            if (name := control_char_param(request)) is not None:
                raise ApiError(400, "bad_request", f"parameter '{name}' must not contain control characters")
            request[TOKEN] = token
            return await handler(request)

        checked.__name__ = handler.__name__
        checked.__doc__ = handler.__doc__
        return checked

    return wrap


async def body(request: web.Request, model: type[M]) -> M:
    try:
        data = parse_json(await read_body(request))
    except BadJson as exc:
        raise ApiError(400, "bad_json", exc.message) from None
    except BadRequest as exc:  # a string no database stores: the body breaks the schema
        raise ApiError(422, "invalid", exc.message) from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid", "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ApiError(422, "invalid", problems) from None


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = parse_int(raw, low, high)
    if value is None:
        raise ApiError(400, "bad_request", f"{name} must be an integer from {low} to {high} (ASCII digits)")
    return value


def path_int(request: web.Request, name: str) -> int:
    value = parse_id(request.match_info[name])
    if value is None:
        raise ApiError(404, "not_found", f"no such {name}")
    return value


def actor(request: web.Request) -> str:
    return f"api:{request[TOKEN].name}"


@asynccontextmanager
async def acting(request: web.Request, action: str, args: dict[str, Any]) -> AsyncIterator[Context]:
    """A transaction with a Context for the token's holder (to reuse what chat commands do);
    the change is audited and what it queued for members goes to the outbox with it. The block
    ends with ``answer(...)``. Under an ``Idempotency-Key`` the key is claimed first in the same
    transaction: a repeat raises ``Replay`` (the first answer) and changes nothing."""
    key = idempotency_key(request)
    request_hash = await _request_hash(request) if key is not None else ""
    dispatcher = request.app[DISPATCHER]
    now = dispatcher.clock.now()
    token = request[TOKEN]
    async with request.app[DB].transaction() as session:
        if key is not None:
            await _claim(session, actor(request), key, request_hash, now)
        ctx = Context(update=Update(channel="api", key=f"api:{token.name}:{now.isoformat()}:{id(request)}",
                                    sender=token.name, at=now),
                      session=session, now=now, texts=dispatcher.texts, dispatcher=dispatcher, role=token.role)
        yield ctx
        await audit.record(session, actor=actor(request), action=action, result="ok", now=now, args=args)
        await outbox.enqueue(session, ctx.outgoing, now=now)
        answered = request.get(ANSWER)
        if answered is None:
            raise RuntimeError(f"{action}: a change made in acting() answers with answer()")
        if key is not None:
            await idempotency.save(session, actor(request), key, status=answered.status, body=answered.text or "")


def answer(request: web.Request, data: Any, status: int = 200) -> web.Response:
    """The answer of a change made in ``acting``: kept with its Idempotency-Key, in its transaction."""
    response = ok(data, status)
    request[ANSWER] = response
    return response


class Replay(Exception):
    """A request under an Idempotency-Key answered before: that answer again, marked as such."""

    def __init__(self, first: idempotency.Answer) -> None:
        super().__init__(first.status)
        self.first = first

    def response(self) -> web.Response:
        return web.Response(text=self.first.body, status=self.first.status, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})


IDEMPOTENCY_KEY = "Idempotency-Key"


def idempotency_key(request: web.Request) -> str | None:
    """The request's ``Idempotency-Key`` (None without one): 1 to 200 printable ASCII characters."""
    given = request.headers.getall(IDEMPOTENCY_KEY, [])
    if not given:
        return None
    if len(given) > 1:
        raise ApiError(400, "bad_idempotency_key", f"send one {IDEMPOTENCY_KEY} header, not {len(given)}")
    key = given[0]
    if not key:
        raise ApiError(400, "bad_idempotency_key", f"{IDEMPOTENCY_KEY} is empty")
    if len(key) > 200:
        raise ApiError(400, "bad_idempotency_key", f"{IDEMPOTENCY_KEY} is at most 200 characters, not {len(key)}")
    if not all(" " <= c <= "~" for c in key):
        raise ApiError(400, "bad_idempotency_key", f"{IDEMPOTENCY_KEY} is printable ASCII (a UUID is usual)")
    return key


async def _request_hash(request: web.Request) -> str:
    """What the request asks, as a digest: method, path, query and body bytes."""
    digest = hashlib.sha256(f"{request.method} {request.path} {sorted(request.query.items())}\n".encode())
    digest.update(await read_body(request))
    return digest.hexdigest()


async def _claim(session: AsyncSession, client: str, key: str, request_hash: str, now: datetime) -> None:
    first = await idempotency.claim(session, client, key, request_hash, now=now)
    if first is None:
        return
    if first.request_hash != request_hash:
        raise ApiError(409, "idempotency_mismatch", f"the {IDEMPOTENCY_KEY} {key[:64]!r} was used for another "
                                                    "request (another body, path or query): use a new key")
    raise Replay(first)
