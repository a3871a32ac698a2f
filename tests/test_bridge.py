"""The bridge: signed events in, signed sends out; sign-in in a group and a scheduled push."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.appkeys import JOBS
from bot.builtin import SiyuConfig
from bot.channels.bridge.channel import sign, signed_headers
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from handlers.broadcasts import playbooks as sop

SECRET = "s" * 40


class FakeGateway:
    """Records what siyu sends, after checking its signature; can be told to fail."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_with: int | None = None
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        h = request.headers
        assert sign(SECRET, h["X-Siyu-Timestamp"], h["X-Siyu-Nonce"], body) == h["X-Siyu-Signature"]
        if self.fail_with:
            return web.Response(status=self.fail_with, text="busy")
        self.sent.append(json.loads(body))
        return web.json_response({"ok": True})


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    app = web.Application()
    app.router.add_post("/send", fake.handle)
    fake.server = TestServer(app)
    await fake.server.start_server()
    yield fake
    await fake.server.close()


@pytest.fixture
async def bot(make_config: Callable[..., Config], gateway: FakeGateway,
              clock: FakeClock) -> AsyncIterator[SandboxClient]:
    assert gateway.server is not None
    config = make_config(bridge={"enabled": True, "secret": SECRET,
                                 "gateway_url": str(gateway.server.make_url("/send")),
                                 "account": "brand-01", "send_rate_per_s": 50.0},
                         scheduler={"enabled": False, "quiet_hours": []})
    config = config.model_copy(update={"sop": SiyuConfig.model_validate(
        {"sop": [{"name": "早安", "text": "早安，{group}！", "cron": "0 9 * * *"}]}).sop})
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def post(bot: SandboxClient, event: dict[str, Any], *, secret: str = SECRET, at: float | None = None,
               nonce: str | None = None) -> tuple[int, Any]:
    body = json.dumps(event, ensure_ascii=False).encode()
    now = at if at is not None else bot.dispatcher.clock.now().timestamp()
    resp = await bot.http.post("/bridge/events", data=body, headers=signed_headers(secret, body, now=now, nonce=nonce))
    return resp.status, await resp.json()


def message(text: str, *, id: str, chat: str | None = "room-1", sender: str = "wxid_a") -> dict[str, Any]:
    return {"id": id, "type": "message", "account": "brand-01", "chat": chat, "from": sender, "name": "小王",
            "text": text}


async def test_sign_in_in_a_bridged_group(bot: SandboxClient, gateway: FakeGateway) -> None:
    status, answer = await post(bot, message("签到", id="e1"))
    assert status == 200 and answer == {"ok": True, "duplicate": False, "replies": 1}
    assert (await post(bot, message("签到", id="e1")))[1]["duplicate"] is True  # a gateway retry
    await bot.deliver()
    assert [(s["chat"], s["text"][:5], s["account"]) for s in gateway.sent] == [("room-1", "签到成功！", "brand-01")]


async def test_bad_signatures_stale_timestamps_replays_and_malformed_events(
    bot: SandboxClient, clock: FakeClock,
) -> None:
    assert (await post(bot, message("签到", id="e2"), secret="x" * 40))[0] == 401
    assert (await post(bot, message("签到", id="e3"), at=clock.now().timestamp() - 301))[0] == 401
    assert (await post(bot, message("签到", id="e4"), nonce="nonce-0001"))[0] == 200
    status, answer = await post(bot, message("签到", id="e5"), nonce="nonce-0001")
    assert status == 409 and "replay" in answer["error"]
    assert (await post(bot, {"id": "e6", "type": "message", "account": "a", "from": "u"}))[0] == 400  # no text
    assert (await post(bot, {"id": "e7", "type": "member_joined", "account": "a", "from": "u"}))[0] == 400  # no chat
    body = b"{not json"
    resp = await bot.http.post("/bridge/events", data=body,
                               headers=signed_headers(SECRET, body, now=clock.now().timestamp()))
    assert resp.status == 400
    resp = await bot.http.post("/bridge/events", data=b"{}")
    assert resp.status == 401  # unsigned


async def test_a_scheduled_push_reaches_bridged_groups(
    bot: SandboxClient, gateway: FakeGateway, clock: FakeClock,
) -> None:
    for room in ("room-1", "room-2"):
        await post(bot, {"id": f"join-{room}", "type": "member_joined", "account": "brand-01", "chat": room,
                         "from": "wxid_b"})
    await bot.deliver()
    gateway.sent.clear()
    clock.set(datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    d = bot.dispatcher
    await sop.plan_slot(d.db, d.config, d.texts, d.config.sop[0], clock.now(), now=clock.now())
    await bot.deliver()
    assert sorted((s["chat"], s["text"]) for s in gateway.sent) == [
        ("room-1", "早安，本群！"), ("room-2", "早安，本群！")]


async def test_a_gateway_error_is_retried_not_lost(bot: SandboxClient, gateway: FakeGateway, clock: FakeClock) -> None:
    gateway.fail_with = 503
    await post(bot, message("签到", id="e8"))
    from bot.appkeys import OUTBOX

    await bot.app[OUTBOX].deliver_once()
    assert gateway.sent == []
    gateway.fail_with = None
    clock.advance(seconds=10)
    await bot.deliver()
    assert [s["text"][:5] for s in gateway.sent] == ["签到成功！"]


async def test_a_replay_is_refused_by_any_process_and_old_nonces_are_let_go(
    make_config: Callable[..., Config], gateway: FakeGateway, clock: FakeClock,
) -> None:
    """Nonces live in the database: a replay sent to another process (here: the next one, after a
    restart) is a replay there too, not a duplicate answered 200."""
    assert gateway.server is not None
    config = make_config(bridge={"enabled": True, "secret": SECRET, "account": "brand-01",
                                 "gateway_url": str(gateway.server.make_url("/send"))}, scheduler={"enabled": False})
    body = json.dumps(message("签到", id="e9")).encode()
    headers = signed_headers(SECRET, body, now=clock.now().timestamp(), nonce="nonce-0001")
    async with sandbox_app(config, clock=clock) as first:
        assert (await first.http.post("/bridge/events", data=body, headers=headers)).status == 200
    async with sandbox_app(config, clock=clock) as second:
        replay = await second.http.post("/bridge/events", data=body, headers=headers)
        assert replay.status == 409 and "replay" in (await replay.json())["error"]
        clock.advance(seconds=601)  # twice the replay window
        assert await second.app[JOBS].run("bridge_nonces") == 1
