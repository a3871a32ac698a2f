"""The ``bridge`` channel: a gateway that relays group and one-to-one messages and membership
events from hosted WeChat clients, over a signed JSON protocol (docs/bridge.md).

Inbound ``POST /bridge/events``: ``X-Siyu-Timestamp`` (unix seconds), ``X-Siyu-Nonce`` and
``X-Siyu-Signature`` = hex HMAC-SHA256 over ``timestamp + "\\n" + nonce + "\\n" + body`` with the
shared secret. A bad signature or a timestamp outside the replay window: 401, nothing stored;
a nonce seen within the window: 409; a malformed body: 400. Events are deduplicated by their
``id`` (a gateway's retry is answered as the first time) and handled before the answer.

Outbound: each message is a signed POST of ``{"id", "account", "chat", "to", "text"}`` to the
gateway's URL, within a conservative rate per account (``[bridge] send_rate_per_s``) and the
outbox's per-group limit; a non-2xx answer is retried with backoff, a 4xx (but 429) is not.
Hosted clients risk account bans (docs/bridge.md): keep these limits low.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta
from typing import Annotated, Literal

import aiohttp
from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from bot.appkeys import DB, DISPATCHER
from bot.channels.base import Capability, Channel, DeliveryError
from bot.channels.bridge.config import BridgeConfig
from bot.clock import Clock
from bot.config import Config
from bot.http import BadRequest, header, json_response, no_control_chars, parse_json, read_body
from bot.jobs import Job
from bot.numbers import parse_int
from bot.texts import Texts
from bot.update import MEMBER_JOINED, MEMBER_LEFT, Update
from storage import nonces
from storage.engine import Database
from storage.outbox import Claimed

NAME = "bridge"
MAX_TEXT = 4000


def sign(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, *, now: float | None = None, nonce: str | None = None) -> dict[str, str]:
    """The headers that sign ``body`` (what the gateway sends, and what siyu sends it)."""
    import secrets

    timestamp = str(int(now if now is not None else time.time()))
    nonce = nonce or secrets.token_hex(16)
    return {"X-Siyu-Timestamp": timestamp, "X-Siyu-Nonce": nonce,
            "X-Siyu-Signature": sign(secret, timestamp, nonce, body),
            "Content-Type": "application/json"}


Ident = Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(no_control_chars)]


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: Ident  # the gateway's event id: the same id twice is one event
    type: Literal["message", "member_joined", "member_left"]
    account: Ident  # the hosted account that saw it
    chat: Ident | None = None  # the group; absent for one-to-one
    sender: Ident = Field(alias="from")
    name: Annotated[str, StringConstraints(max_length=128)] | None = None
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)] | None = None


class BridgeChannel(Channel):
    name = NAME
    capabilities = frozenset({Capability.RECEIVE_GROUP, Capability.RECEIVE_PRIVATE, Capability.SEND_GROUP,
                              Capability.SEND_PRIVATE, Capability.WELCOME_MEMBER})

    def __init__(self, config: BridgeConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.rate_per_s = config.send_rate_per_s
        self._http: aiohttp.ClientSession | None = None
        self._db: Database

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/bridge/events", self.post_event)

    async def start(self, app: web.Application) -> None:
        self._db = app[DB]
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    # -- inbound ----------------------------------------------------------------------------

    async def _verify(self, request: web.Request, body: bytes) -> None:
        """The signature, the timestamp within the replay window, and a nonce no process of this
        siyu has seen (they are kept in the database: a replay sent to another process is one too)."""
        # The signed headers are ASCII (docs/bridge.md): unix seconds, a printable nonce, hex.
        timestamp, nonce, given = (header(request, f"X-Siyu-{name}") for name in ("Timestamp", "Nonce", "Signature"))
        sent = parse_int(timestamp, 0, 10**12)
        nonce_ok = 8 <= len(nonce) <= 64 and nonce.isascii() and nonce.isprintable()
        if sent is None or not nonce_ok or not (given and given.isascii()):
            raise BadRequest("missing or malformed X-Siyu-Timestamp, X-Siyu-Nonce or X-Siyu-Signature", status=401)
        if not hmac.compare_digest(sign(self.config.secret, timestamp, nonce, body).encode(), given.encode()):
            raise BadRequest("bad signature", status=401)
        now = self.clock.now()
        window = self.config.replay_window_s
        if abs(now.timestamp() - sent) > window:
            raise BadRequest(f"stale timestamp: more than {window} s from the server's clock", status=401)
        async with self._db.transaction() as session:
            fresh = await nonces.claim(session, NAME, nonce, now=now)
        if not fresh:
            raise BadRequest("nonce seen before: a replay", status=409)

    def jobs(self) -> list[Job]:
        """Nonces older than the replay window are let go: a replay that old is refused by its timestamp."""

        kept = timedelta(seconds=2 * self.config.replay_window_s)

        async def forget(db: Database, config: Config, texts: Texts, now: datetime) -> int:
            async with db.transaction() as session:
                return await nonces.forget(session, NAME, before=now - kept)

        return [Job("bridge_nonces", forget, every_s=60.0)]

    async def post_event(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        await self._verify(request, body)
        data = parse_json(body)
        try:
            event = EventIn.model_validate(data)
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"malformed event: {str(exc).splitlines()[0][:200]}") from None
        if event.type == "message" and event.text is None:
            raise BadRequest("a message needs text")
        if event.type != "message" and event.chat is None:
            raise BadRequest(f"{event.type} needs chat")
        dispatcher = request.app[DISPATCHER]
        update = Update(channel=NAME, key=f"{NAME}:{event.id}", sender=event.sender, at=dispatcher.clock.now(),
                        chat=event.chat, text=event.text if event.type == "message" else None,
                        event=None if event.type == "message" else {"member_joined": MEMBER_JOINED,
                                                                    "member_left": MEMBER_LEFT}[event.type],
                        sender_name=event.name)
        result = await dispatcher.feed(update)
        return json_response({"ok": True, "duplicate": result.duplicate, "replies": len(result.replies)})

    # -- outbound ---------------------------------------------------------------------------

    async def send(self, message: Claimed) -> None:
        assert self._http is not None
        body = json.dumps({"id": message.id, "account": self.config.account, "chat": message.chat, "to": message.to,
                           "text": message.text}, ensure_ascii=False).encode()
        headers = signed_headers(self.config.secret, body, now=self.clock.now().timestamp())
        try:
            async with self._http.post(self.config.gateway_url, data=body, headers=headers) as resp:
                if resp.status < 300:
                    return
                reason = f"gateway answered {resp.status}: {(await resp.text())[:200]}"
                if resp.status == 429:
                    raise DeliveryError(reason, retry_after=float(resp.headers.get("Retry-After", "60") or 60))
                raise DeliveryError(reason, retryable=resp.status >= 500)
        except aiohttp.ClientError as exc:
            raise DeliveryError(f"gateway unreachable: {type(exc).__name__}") from None
