"""The inbox keeps what it must and no more: a handled update (its dedup key, for WeCom the
message itself) goes after ``[storage] inbox_keep_days``; one never handled stays until it is."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from bot.appkeys import JOBS
from bot.config import Config
from bot.testing import FakeClock, sandbox_app
from storage import inbox
from storage.models import InboundUpdate


async def test_handled_updates_older_than_the_kept_days_go_and_the_rest_stay(
        make_config: Callable[..., Config], clock: FakeClock) -> None:
    async with sandbox_app(make_config(storage={"inbox_keep_days": 7}), clock=clock) as bot:
        await bot.say("u1", "你好", id="old")
        async with bot.db.transaction() as s:  # stored by an ack-first channel, never handled
            await inbox.store(s, [("wecom:stuck", "wecom", "<xml/>")], now=clock.now())
        clock.advance(days=8)
        await bot.say("u2", "你好", id="new")
        assert await bot.app[JOBS].run("inbox_retention") == 1
        async with bot.db.read() as s:
            kept = (await s.execute(select(InboundUpdate.key).order_by(InboundUpdate.id))).scalars().all()
        assert kept == ["wecom:stuck", "sandbox:msg:u2:new"]
        assert await bot.app[JOBS].run("inbox_retention") == 0
