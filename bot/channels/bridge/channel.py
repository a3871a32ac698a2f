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
from collections import OrderedDict
from typing import Annotated, Literal

import aiohttp
from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from bot.appkeys import DISPATCHER
from bot.channels.base import Capability, Channel, DeliveryError
from bot.channels.bridge.config import BridgeConfig
from bot.clock import Clock
from bot.http import BadRequest, header, json_response, no_control_chars, parse_json, read_body
from bot.numbers import parse_int
from bot.update import MEMBER_JOINED, MEMBER_LEFT, Update
from storage.outbox import Claimed

NAME = "bridge"
MAX_TEXT = 4000
NONCES_KEPT = 100_000


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
        self._nonces: OrderedDict[str, float] = OrderedDict()
        self._http: aiohttp.ClientSession | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/bridge/events", self.post_event)

    async def start(self, app: web.Application) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    # -- inbound ----------------------------------------------------------------------------

    def _verify(self, request: web.Request, body: bytes) -> None:
        # The signed headers are ASCII (docs/bridge.md): unix seconds, a printable nonce, hex.
        timestamp, nonce, given = (header(request, f"X-Siyu-{name}") for name in ("Timestamp", "Nonce", "Signature"))
        sent = parse_int(timestamp, 0, 10**12)
        nonce_ok = 8 <= len(nonce) <= 64 and nonce.isascii() and nonce.isprintable()
        if sent is None or not nonce_ok or not (given and given.isascii()):
            raise BadRequest("missing or malformed X-Siyu-Timestamp, X-Siyu-Nonce or X-Siyu-Signature", status=401)
        if not hmac.compare_digest(sign(self.config.secret, timestamp, nonce, body), given):
            raise BadRequest("bad signature", status=401)
        now = self.clock.now().timestamp()
        window = self.config.replay_window_s
        if abs(now - sent) > window:
            raise BadRequest(f"stale timestamp: more than {window} s from the server's clock", status=401)
        while self._nonces and next(iter(self._nonces.values())) < now - window:
            self._nonces.popitem(last=False)  # outside the window a replay fails the timestamp check
        if nonce in self._nonces:
            raise BadRequest("nonce seen before: a replay", status=409)
        if len(self._nonces) >= NONCES_KEPT:
            self._nonces.popitem(last=False)
        self._nonces[nonce] = now

    async def post_event(self, request: web.Request) -> web.Response:
        body = await read_body(request)
        self._verify(request, body)
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
