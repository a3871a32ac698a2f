"""WeCom callbacks are answered at once and handled by a pool of ``[wecom] handling_workers``:
that many at a time and never more, every stored callback handled once (none twice, none
lost), and ``/metrics`` shows how old the oldest unhandled one is."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from bot.appkeys import CHANNELS
from bot.channels.wecom.inbound import CallbackEndpoint, default_workers
from bot.channels.wecom.messages import Inbound
from bot.config import Config
from bot.testing import FakeClock, sandbox_app
from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, text_message
from storage import inbox
from storage.inbox import InboundUpdate
from storage.outbox import OutboxMessage
from tests.conftest import WECOM_AES_KEY, WECOM_CORP, WECOM_TOKEN, wecom_section
from tests.test_observability import scrape, value

WORKERS, CALLBACKS = 8, 120


async def until(check: Callable[[], bool], what: str) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


async def test_the_pool_handles_every_callback_once_with_its_workers(
    make_config: Callable[..., Config], clock: FakeClock, fake: FakeWeCom,
) -> None:
    config = make_config(wecom=wecom_section(fake.base_url, handling_workers=WORKERS))
    builder = CallbackBuilder(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP, agent_id=1000002)
    async with sandbox_app(config, clock=clock) as bot:
        endpoint: CallbackEndpoint = bot.app[CHANNELS]["wecom"].endpoint  # type: ignore[attr-defined]
        assert endpoint.workers == WORKERS
        handle = endpoint._handle
        running, most, seen = 0, 0, []
        release = asyncio.Event()

        async def held(message: Inbound) -> None:
            # Each handler waits here until the test lets them go: the pool's width shows.
            nonlocal running, most
            running += 1
            most = max(most, running)
            seen.append(message.key)
            await release.wait()
            running -= 1
            await handle(message)

        endpoint._handle = held
        posts = [builder.post(text_message(f"staff{i % 30}", f"你好 {i}", 9000 + i, corp_id=WECOM_CORP))
                 for i in range(CALLBACKS)]
        answers = await asyncio.gather(*(bot.http.post(p, data=b, headers={"Content-Type": "text/xml"})
                                         for p, b in posts))
        assert all(a.status == 200 for a in answers)
        await until(lambda: running == WORKERS, f"{WORKERS} handlers at once")
        await asyncio.sleep(0.1)
        assert running == most == WORKERS  # the rest wait in the queue
        release.set()
        assert await endpoint.idle(30)
        assert sorted(seen) == sorted(set(seen)) and len(seen) == CALLBACKS  # none twice, none lost
        async with bot.db.read() as s:
            left = (await s.execute(select(func.count()).select_from(InboundUpdate)
                                    .where(InboundUpdate.handled_at.is_(None)))).scalar_one()  # type: ignore[union-attr]
            answered = dict((await s.execute(  # type: ignore[call-overload]
                select(OutboxMessage.update_key, func.count()).where(OutboxMessage.channel == "wecom")
                .group_by(OutboxMessage.update_key))).all())
        assert left == 0
        assert len(answered) == CALLBACKS and set(answered.values()) == {1}  # each answered once


async def test_the_default_pool_is_sized_for_the_database(make_config: Callable[..., Config], clock: FakeClock,
                                                          fake: FakeWeCom) -> None:
    async with sandbox_app(make_config(wecom=wecom_section(fake.base_url)), clock=clock) as bot:
        endpoint: CallbackEndpoint = bot.app[CHANNELS]["wecom"].endpoint  # type: ignore[attr-defined]
        assert endpoint.workers == default_workers(bot.db.connections) >= 32


async def test_metrics_show_the_age_of_the_oldest_unhandled_callback(
    make_config: Callable[..., Config], clock: FakeClock, fake: FakeWeCom,
) -> None:
    async with sandbox_app(make_config(wecom=wecom_section(fake.base_url)), clock=clock) as bot:
        assert value(await scrape(bot), "siyu_inbox_oldest_unhandled_seconds", channel="wecom") == 0
        # Stored while the handlers were away (a crash): only the next scan offers them.
        rows: list[Any] = [("wecom:old", "wecom", "<xml/>")]
        async with bot.db.transaction() as s:
            await inbox.store(s, rows, now=clock.now())
        clock.advance(seconds=7)
        async with bot.db.transaction() as s:
            await inbox.store(s, [("wecom:new", "wecom", "<xml/>")], now=clock.now())
        clock.advance(seconds=2)
        samples = await scrape(bot)
        assert value(samples, "siyu_inbox_oldest_unhandled_seconds", channel="wecom") == 9
        assert value(samples, "siyu_inbox_unhandled", channel="wecom") == 2
        async with bot.db.transaction() as s:
            await inbox.mark_handled(s, "wecom:old", now=clock.now())
        assert value(await scrape(bot), "siyu_inbox_oldest_unhandled_seconds", channel="wecom") == 2
