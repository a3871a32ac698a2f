"""HTTP helpers: JSON errors, reading a JSON body or a header that a hostile caller sent, and
who the client is behind a reverse proxy."""
from __future__ import annotations

import functools
import ipaddress
import json
import logging
from collections.abc import Iterable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from storage.engine import DatabaseBusy, is_transient

log = logging.getLogger("siyu.http")

MAX_BODY_BYTES = 1024 * 1024
M = TypeVar("M", bound=BaseModel)

# Chinese text stays readable in responses and logs instead of \uXXXX escapes.
dumps = functools.partial(json.dumps, ensure_ascii=False)


def no_control_chars(value: str) -> str:
    """A pydantic validator for ids and names that hostile input fills with control characters."""
    if any(ord(c) < 32 for c in value):
        raise ValueError("must not contain control characters")
    return value


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=dumps)


def json_error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


class BadRequest(Exception):
    """Raised by request parsing; the JSON error middleware answers 400 with ``message``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def read_body(request: web.Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, refusing more than ``limit`` bytes without reading them all.

    Requires the app's ``client_max_size`` to be ``limit``: aiohttp stops reading there (also
    for a chunked body with no Content-Length) and raises 413, answered here as 400."""
    if request.content_length is not None and request.content_length > limit:
        raise BadRequest(f"body is {request.content_length} bytes; at most {limit} are accepted")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(f"body is over {limit} bytes; at most {limit} are accepted") from None


class BadJson(BadRequest):
    """The body is not JSON siyu reads: malformed, nested too deeply, a number too long."""


def parse_json(body: bytes) -> Any:
    """The JSON ``body``, or BadJson naming the problem, or BadRequest naming a string that no
    database stores (PostgreSQL refuses NUL in text; neither encodes a lone surrogate)."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadJson(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadJson("body is nested too deeply") from None
    except ValueError:  # int() refuses over 4,300 digits (sys.int_info.str_digits_check_threshold)
        raise BadJson("body has a number too long to read") from None
    found = _unstorable(data)
    if found is not None:
        field, problem = found
        raise BadRequest(f"field '{field[:64]}' must not contain {problem}")
    return data


def _unstorable(data: Any) -> tuple[str, str] | None:
    """The first string of ``data`` (a key or a value) no database stores: its dotted path and
    what is wrong. Walks without recursion: the JSON may be as deep as the parser allowed."""
    todo: list[tuple[str, Any]] = [("body", data)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                at = key if path == "body" else f"{path}.{key}"
                if problem := _text_problem(key):
                    return at, problem
                todo.append((at, item))
        elif isinstance(value, list):
            todo.extend((str(i) if path == "body" else f"{path}.{i}", item) for i, item in enumerate(value))
        elif isinstance(value, str) and (problem := _text_problem(value)):
            return path, problem
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "NUL (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "a lone surrogate (\\ud800-\\udfff)"
    return None


def header(request: web.Request, name: str) -> str:
    """A request header as text ("" when absent). BadRequest if its bytes are not UTF-8: aiohttp
    keeps them as lone surrogates, which no signature check, comparison or database can encode."""
    value = request.headers.get(name, "")
    if _text_problem(value) is not None:
        raise BadRequest(f"header {name} is not valid UTF-8")
    return value


def control_char_param(request: web.Request) -> str | None:
    """The name of a path or query parameter holding a control character (NUL, which PostgreSQL
    refuses in text, among them): no id, search or date has one. None if none does."""
    for name, value in (*request.match_info.items(), *request.query.items()):
        if any(ord(c) < 32 or c == "\x7f" for c in value):
            return name
    return None


async def read_model(request: web.Request, model: type[M]) -> M:
    data = parse_json(await read_body(request))
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest("; ".join(_describe(e) for e in exc.errors())) from None


def _describe(error: Any) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "body"
    if error["type"] == "extra_forbidden":
        return f"unknown field '{field}'"
    if error["type"] == "missing":
        return f"field '{field}' is required"
    return f"field '{field}': {error['msg'].removeprefix('Value error, ')}"


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error a caller can cause becomes JSON with a 4xx; nothing leaks a stack trace."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return json_error(exc.status, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason or "error")
    except Exception as exc:
        if is_transient(exc):
            log.warning("database busy on %s %s (%s): answered 503", request.method, request.path, type(exc).__name__)
            return busy(json_error(503, "the database is busy: try again in a moment"))
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error; the operator can find it in the log")


def busy(response: web.Response) -> web.Response:
    """``response`` (a 503) telling the client when to try again: nothing was stored, so the
    same request again (the same message id) is handled as if it came the first time."""
    response.headers["Retry-After"] = str(DatabaseBusy.retry_after_s)
    return response


@web.middleware
async def refuse_compressed(request: web.Request, handler: Any) -> web.StreamResponse:
    """No WeCom callback, gateway or API client compresses what it sends, and inflating a body
    would happen on the event loop before any size cap sees it (1 MB of gzip is 1 GB of zeros):
    the app takes bodies as they come (``auto_decompress`` off) and refuses compressed ones."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        return json_error(415, f"compressed request bodies are not accepted (Content-Encoding: {encoding[:32]})")
    return await handler(request)


def client_address(request: web.Request,
                   trusted_proxies: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """The client's IP address. When the TCP peer is a trusted proxy (``[server] trusted_proxies``),
    the right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy: each proxy
    appends the address it was called from, so everything left of that is the client's to forge.
    From any other peer the header is ignored. An entry that is not an address ends the walk
    (the hop that passed it on answers for it)."""
    trusted = tuple(trusted_proxies)
    if not trusted:  # the peer itself (the socket's address, already in its normal form)
        return request.remote or "?"
    peer = _ip(request.remote or "")
    if peer is None:
        return request.remote or "?"
    client = peer
    if _in(client, trusted):
        hops = [hop for header in request.headers.getall("X-Forwarded-For", ()) for hop in header.split(",")]
        for hop in reversed(hops):
            address = _ip(hop.strip())
            if address is None:
                break
            client = address
            if not _in(address, trusted):
                break
    return str(client)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d: the same client as a.b.c.d.
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def _in(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    return any(address in network for network in networks)
