"""The outbox keeps a settled message ``[outbox] keep_days`` and no longer (a rush hour leaves a
row per sign-in); a message still to be sent stays, and so does each channel's last delivered
one, after which SQLite numbers the next delivery (the sandbox pages by that number)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select, update
from sqlmodel import col

from bot.appkeys import JOBS
from bot.config import Config
from bot.testing import FakeClock, sandbox_app
from storage import outbox
from storage.models import OutboxMessage


async def test_settled_messages_older_than_the_kept_days_go_and_the_rest_stay(
        make_config: Callable[..., Config], clock: FakeClock) -> None:
    async with sandbox_app(make_config(outbox={"keep_days": 7}), clock=clock) as bot:
        for i in range(3):
            await bot.say("u1", "积分", id=f"old{i}")
        async with bot.db.transaction() as s:  # one failed, one due only in a month
            failed, later = await outbox.enqueue(s, [
                outbox.Outgoing("sandbox", "送不出去", to="u9"),
                outbox.Outgoing("sandbox", "一个月后", to="u1", not_before=clock.now() + timedelta(days=30))],
                now=clock.now())
            await s.execute(update(OutboxMessage).where(col(OutboxMessage.id) == failed)
                            .values(status=outbox.FAILED, last_error="gone"))
        old = await bot.outbox(to="u1")
        assert len(old) == 3
        clock.advance(days=8)
        assert await bot.app[JOBS].run("outbox_retention") == 3  # two of u1's answers, the failed one
        async with bot.db.read() as s:
            kept = {r.id: r.status for r in (await s.execute(select(OutboxMessage))).scalars()}
        assert kept == {old[-1]["id"]: outbox.DELIVERED, later: outbox.PENDING}
        await bot.say("u2", "积分", id="new")
        new = await bot.outbox(to="u2")
        assert new[0]["seq"] > old[-1]["seq"]  # numbered after the kept one
        assert await bot.app[JOBS].run("outbox_retention") == 1  # the kept one is no longer the last
        assert await bot.app[JOBS].run("outbox_retention") == 0
