"""The sandbox channel: every capability, no platform. For development, demos and tests.

A message posted to ``/sandbox/messages`` is handled completely before the response, whose
``replies`` are the outbox rows the update wrote. Delivering a sandbox row only marks it
delivered; ``/sandbox/outbox`` lists what was delivered, broadcasts included.
"""
from __future__ import annotations

import asyncio
import functools
import ipaddress
import uuid
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from bot.appkeys import DB, DISPATCHER
from bot.channels.base import Capability, Channel
from bot.channels.sandbox.config import SandboxConfig
from bot.channels.sandbox.identities import roles_of
from bot.dispatcher import FeedResult
from bot.http import BadRequest, json_response, no_control_chars, read_model
from bot.numbers import parse_int
from bot.update import CONTACT_ADDED, CONTACT_LOST, MEMBER_JOINED, MEMBER_LEFT, Update
from storage import outbox
from storage.outbox import Claimed

NAME = "sandbox"
# It posts directly, shows text only (a card reaches it as its title and URL in the text), and
# has no staff whose customers could be handed over.
CAPABILITIES = frozenset(Capability) - {Capability.SEND_OWNER_TASK, Capability.GROUP_CARDS,
                                        Capability.TRANSFER_CONTACTS}
MAX_TEXT = 4000


# Ids and names: 1 to 64 characters, no control characters.
Ident = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(no_control_chars)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MessageIn(_Body):
    from_: Ident = Field(alias="from")
    chat: Ident | None = None
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    name: Ident | None = None
    # Optional client message id: the same id twice is one message (as a platform retry is).
    id: Ident | None = None


class EventIn(_Body):
    type: Literal["member_joined", "member_left", "contact_added", "contact_lost"]
    user: Ident
    chat: Ident | None = None
    state: Ident | None = None
    name: Ident | None = None
    id: Ident | None = None


def _replies(result: FeedResult) -> web.Response:
    return json_response({"replies": [{"id": r.id, "chat": r.chat, "to": r.to, "text": r.text}
                                      for r in result.replies]})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A proxy in front (nginx) makes every client look local: a forwarded request is not.
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def is_local(request: web.Request) -> bool:
    """The client is this machine: a loopback peer, and nothing forwarded for someone else."""
    try:
        loopback = request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
    except ValueError:  # a Unix socket's peer has no address: it is this machine
        loopback = True
    return loopback and not any(h in request.headers for h in FORWARDING_HEADERS)


def _key(kind: str, sender: str, client_id: str | None) -> str:
    return f"{NAME}:{kind}:{sender}:{client_id}" if client_id else f"{NAME}:{kind}:{uuid.uuid4().hex}"


class SandboxChannel(Channel):
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, config: SandboxConfig | None = None) -> None:
        config = config or SandboxConfig()
        self.rate_per_s = config.send_rate_per_s
        self.latency_s = config.send_latency_ms / 1000
        self.allow_remote = config.allow_remote

    async def send(self, message: Claimed) -> None:
        """Nothing to call: a delivered sandbox row is what the outbox endpoint shows (after
        ``[sandbox] send_latency_ms``, which stands in for a network call)."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)

    def add_routes(self, app: web.Application) -> None:
        local = self._local_only
        app.router.add_post("/sandbox/messages", local(self.post_message))
        app.router.add_post("/sandbox/events", local(self.post_event))
        app.router.add_get("/sandbox/outbox", local(self.get_outbox))
        app.router.add_get("/sandbox", local(self.page))
        # The address `siyu run` prints first: a newcomer who opens it lands on the chat page.
        app.router.add_get("/", local(self.to_page))
        app.router.add_get("/sandbox/roles", local(roles_of(NAME)))

    async def to_page(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/sandbox")

    def _local_only(self, handler: Handler) -> Handler:
        """Whoever reaches the sandbox speaks as any member or operator they name, so it answers
        this machine only (``[sandbox] allow_remote`` lifts that, for a demo on a trusted network)."""
        if self.allow_remote:
            return handler

        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not is_local(request):
                raise BadRequest("the sandbox answers this machine only ([sandbox] allow_remote)", status=403)
            return await handler(request)

        return guarded

    async def post_message(self, request: web.Request) -> web.Response:
        body = await read_model(request, MessageIn)
        dispatcher = request.app[DISPATCHER]
        update = Update(
            channel=NAME, key=_key("msg", body.from_, body.id), sender=body.from_, at=dispatcher.clock.now(),
            chat=body.chat, text=body.text, sender_name=body.name,
        )
        return _replies(await dispatcher.feed(update))

    async def post_event(self, request: web.Request) -> web.Response:
        body = await read_model(request, EventIn)
        if body.type in (MEMBER_JOINED, MEMBER_LEFT) and body.chat is None:
            raise BadRequest(f"field 'chat' is required for {body.type}")
        if body.type in (CONTACT_ADDED, CONTACT_LOST) and body.chat is not None:
            raise BadRequest(f"field 'chat' must be absent for {body.type} (a one-to-one event)")
        dispatcher = request.app[DISPATCHER]
        update = Update(
            channel=NAME, key=_key(body.type, body.user, body.id), sender=body.user, at=dispatcher.clock.now(),
            chat=body.chat, event=body.type, sender_name=body.name, channel_code=body.state,
        )
        return _replies(await dispatcher.feed(update))

    async def get_outbox(self, request: web.Request) -> web.Response:
        q = request.query
        unknown = set(q) - {"chat", "to", "since", "limit"}
        if unknown:
            raise BadRequest(f"unknown query parameter(s): {', '.join(sorted(unknown))}")
        _check_ids(q)
        since = _int_param(q.get("since"), "since", 0, 0, 2**62)
        limit = _int_param(q.get("limit"), "limit", 200, 1, 1000)
        async with request.app[DB].read() as session:
            rows = await outbox.delivered(
                session, channel=NAME, chat=q.get("chat") or None, to=q.get("to") or None, since=since, limit=limit,
            )
        return json_response({"messages": [
            {"id": m.id, "seq": m.delivered_seq, "chat": m.chat, "to": m.to, "text": m.text,
             "at": (m.delivered_at or m.created_at).isoformat()}
            for m in rows
        ]})

    async def page(self, request: web.Request) -> web.Response:
        html = resources.files("bot.channels.sandbox").joinpath("page.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html", charset="utf-8")


def _int_param(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    value = parse_int(raw, low, high)
    if value is None:
        raise BadRequest(f"query parameter '{name}' must be an integer from {low} to {high} (ASCII digits)")
    return value


def _check_ids(query: Mapping[str, str]) -> None:
    """``chat`` and ``to`` are ids as messages carry them: at most 64 characters, no control
    characters (NUL, which PostgreSQL refuses, among them)."""
    for name in ("chat", "to"):
        value = query.get(name, "")
        if len(value) > 64 or any(ord(c) < 32 for c in value):
            raise BadRequest(f"query parameter '{name}' is an id: at most 64 characters, no control characters")
