"""A finished flow's row is written with its batch's others (``storage.flows.finish``): read
back as written by anyone who looks in the same transaction, and a row changed meanwhile is
still refused (the version check holds for the whole batch)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import flows
from storage.community import Member


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    async with sandbox_app(make_config(), clock=clock) as client:
        yield client


async def started(bot: SandboxClient, n: int) -> list[int]:
    now = bot.dispatcher.clock.now()
    async with bot.db.transaction() as s:
        ids = []
        for i in range(n):
            member = Member(channel="sandbox", external_id=f"f{i}", first_seen_at=now, last_seen_at=now)
            s.add(member)
            await s.flush()
            await flows.save(s, member.id, "redemption", state="confirm", data={"id": 1}, version=0, active=True,
                             entered_at=now, deadlines_fired=0, deadline_at=now, now=now)
            ids.append(member.id)
    return ids


async def test_finished_rows_are_written_together_and_read_back(bot: SandboxClient) -> None:
    ids = await started(bot, 3)
    now = bot.dispatcher.clock.now()
    async with bot.db.transaction() as s:
        for m in ids:
            assert flows.finish(s, m, "redemption", state="done", data={"id": 1, "n": m}, version=1,
                                entered_at=now, deadlines_fired=0, now=now) == 2
        row = await flows.load(s, ids[0], "redemption")  # flushes first: never the old row
        assert row is not None and (row.state, row.version, row.active) == ("done", 2, False)
    async with bot.db.read() as s:
        rows = [await flows.load(s, m, "redemption") for m in ids]
    assert [(r.state, r.data["n"], r.finished_at is not None) for r in rows if r] == [
        ("done", m, True) for m in ids]
    assert all(r is not None and r.deadline_at is None for r in rows)


async def test_a_row_changed_meanwhile_fails_the_whole_flush(bot: SandboxClient) -> None:
    ids = await started(bot, 2)
    now = bot.dispatcher.clock.now()
    with pytest.raises(flows.StaleFlow):
        async with bot.db.transaction() as s:
            flows.finish(s, ids[0], "redemption", state="done", data={}, version=1, entered_at=now,
                         deadlines_fired=0, now=now)
            flows.finish(s, ids[1], "redemption", state="done", data={}, version=7, entered_at=now,  # stale
                         deadlines_fired=0, now=now)
            await flows.flush(s)
    async with bot.db.read() as s:  # rolled back: both still wait for 确认
        assert [(await flows.load(s, m, "redemption")).state for m in ids] == ["confirm", "confirm"]  # type: ignore[union-attr]
