"""HTTP helpers: JSON errors, reading a JSON body that a hostile caller sent, and who the
client is behind a reverse proxy."""
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


async def read_model(request: web.Request, model: type[M]) -> M:
    body = await read_body(request)
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
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
