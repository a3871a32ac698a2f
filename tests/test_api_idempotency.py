"""The REST API's Idempotency-Key: a creating POST sent again (a proxy's retry, a client's second
try) gets the first answer instead of creating twice; the same key with another request is a 409."""
from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import text

from bot.testing import FakeClock
from storage import idempotency
from storage.engine import Database


async def _waiting_on_a_lock(db: Database) -> None:
    """Until another connection waits on a row lock (a bounded poll of the server's state, not a sleep
    for time to pass: the test must see the second request blocked before the first commits)."""
    for _ in range(500):
        async with db.read() as s:
            if (await s.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))).scalar_one():
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the second request never waited for the first")


@pytest.mark.parametrize("first_commits", [True, False])
async def test_a_repeat_racing_the_first_on_another_process_waits_for_it(
    db: Database, database_url: str, on_postgres: bool, clock: FakeClock, first_commits: bool,
) -> None:
    if not on_postgres:
        pytest.skip("two processes write at once on PostgreSQL only (SQLite's writers take turns)")
    other = Database(database_url)  # another process's connections
    try:
        async def second() -> idempotency.Answer | None:
            async with other.transaction() as s:
                return await idempotency.claim(s, "api:crm", "k", "hash", now=clock.now())

        with contextlib.suppress(RuntimeError):
            async with db.transaction() as s:
                assert await idempotency.claim(s, "api:crm", "k", "hash", now=clock.now()) is None
                racing = asyncio.create_task(second())
                await _waiting_on_a_lock(other)
                await idempotency.save(s, "api:crm", "k", status=201, body='{"id": 1}')
                if not first_commits:
                    raise RuntimeError("the first request failed: its transaction rolls back")
        # The first's answer once it committed; had it rolled back, the second claims the key itself.
        assert await racing == (idempotency.Answer("hash", 201, '{"id": 1}') if first_commits else None)
    finally:
        await other.dispose()
