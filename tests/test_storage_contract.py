"""The storage contract: what the rest of siyu relies on from ``storage``, on every backend.

One class, run once per backend (aiogram's BaseStorage tests in spirit): SQLite always,
PostgreSQL when ``SIYU_TEST_DATABASE_URL`` names one. A behaviour that differs between the two
is a bug in ``storage``, not something callers should have to know about.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy import update as sa_update
from sqlalchemy.exc import StatementError

from storage import audit, community, inbox, migrate, outbox
from storage.community import Sighting
from storage.engine import Database
from storage.models import Group, GroupMembership, InboundUpdate, Member, OutboxMessage
from storage.outbox import Outgoing
from tests.conftest import PG_URL, fresh_database

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql", id="postgresql",
        marks=pytest.mark.skipif(PG_URL is None, reason="SIYU_TEST_DATABASE_URL is not set"),
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def migrated_url(backend: str, tmp_path: Path) -> str:
    """A fresh database of ``backend`` brought to head (synchronously, before any loop work)."""
    url = fresh_database(backend, tmp_path)
    migrate.upgrade(url)
    return url


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    database = Database(migrated_url)
    try:
        yield database
    finally:
        await database.dispose()


def sightings(*entries: tuple[str, str | None, int, str | None]) -> dict[tuple[str, str], Sighting]:
    """``(external_id, name, messages, channel_code)`` on the sandbox channel."""
    return {("sandbox", e): Sighting(name=n, messages=m, channel_code=s) for e, n, m, s in entries}


async def enqueue(db: Database, *messages: Outgoing, now: datetime = T0) -> list[int]:
    async with db.transaction() as s:
        return await outbox.enqueue(s, messages, now=now)


async def claim(db: Database, *, now: datetime, limit: int = 100) -> list[outbox.Claimed]:
    async with db.transaction() as s:
        return await outbox.claim_due(s, now=now, limit=limit, lease=LEASE)


async def outbox_row(db: Database, id_: int) -> OutboxMessage:
    async with db.read() as s:
        return (await s.execute(select(OutboxMessage).where(OutboxMessage.id == id_))).scalar_one()


async def member(db: Database, external_id: str) -> Member:
    async with db.read() as s:
        return (await s.execute(
            select(Member).where(Member.channel == "sandbox", Member.external_id == external_id)
        )).scalar_one()


class TestStorageContract:
    # -- migrations ---------------------------------------------------------------------------

    async def test_migrations_reach_head_and_upgrade_again_is_harmless(
        self, migrated_url: str, db: Database,
    ) -> None:
        head = migrate.head_revision()
        assert head is not None
        assert await asyncio.to_thread(migrate.current_revision, migrated_url) == head

        async with db.transaction() as s:
            await audit.record(s, actor="system", action="boot", result="ok", now=T0)
        # A second upgrade (every ``siyu run`` does one) neither fails nor touches the data.
        await asyncio.to_thread(migrate.upgrade, migrated_url)
        assert await asyncio.to_thread(migrate.current_revision, migrated_url) == head
        async with db.read() as s:
            assert [e.action for e in await audit.latest(s)] == ["boot"]

    # -- inbox ----------------------------------------------------------------------------------

    async def test_begin_handling_handles_new_keys_once_and_drops_repeats(self, db: Database) -> None:
        keys = {"sandbox:1": "sandbox", "sandbox:2": "sandbox"}
        async with db.transaction() as s:
            assert await inbox.begin_handling(s, keys, now=T0) == set(keys)
        async with db.transaction() as s:
            assert await inbox.begin_handling(s, keys, now=T0 + timedelta(seconds=1)) == set()
        # A batch mixing a repeat and a new key handles only the new one.
        async with db.transaction() as s:
            got = await inbox.begin_handling(s, {"sandbox:2": "sandbox", "sandbox:3": "sandbox"}, now=T0)
        assert got == {"sandbox:3"}
        async with db.transaction() as s:
            assert await inbox.begin_handling(s, {}, now=T0) == set()
        async with db.read() as s:
            assert await inbox.unhandled(s) == []
            n = len((await s.execute(select(InboundUpdate))).scalars().all())
        assert n == 3

    async def test_begin_handling_rolled_back_leaves_keys_new(self, db: Database) -> None:
        class Boom(Exception):
            pass

        with pytest.raises(Boom):
            async with db.transaction() as s:
                assert await inbox.begin_handling(s, {"k": "sandbox"}, now=T0) == {"k"}
                raise Boom
        # The handler failed, nothing was committed: the platform's retry is handled, not dropped.
        async with db.transaction() as s:
            assert await inbox.begin_handling(s, {"k": "sandbox"}, now=T0) == {"k"}

    async def test_claim_drops_repeats(self, db: Database) -> None:
        async with db.transaction() as s:
            assert await inbox.claim(s, "wecom:a", "wecom", now=T0, handled=True) is True
        async with db.transaction() as s:
            assert await inbox.claim(s, "wecom:a", "wecom", now=T0, handled=True) is False

    async def test_stored_unhandled_update_is_taken_exactly_once(self, db: Database) -> None:
        # An ack-first channel (WeCom) answers the platform, then stores the payload unhandled.
        async with db.transaction() as s:
            assert await inbox.claim(s, "wecom:m1", "wecom", now=T0, payload='{"x": 1}', handled=False)
            assert await inbox.claim(s, "wecom:m2", "wecom", now=T0, payload='{"x": 2}', handled=False)
        async with db.read() as s:
            pending = await inbox.unhandled(s)
        assert [(u.key, u.payload, u.handled_at) for u in pending] == [
            ("wecom:m1", '{"x": 1}', None), ("wecom:m2", '{"x": 2}', None),
        ]

        later = T0 + timedelta(seconds=5)
        async with db.transaction() as s:
            assert await inbox.begin_handling(s, {"wecom:m1": "wecom"}, now=later) == {"wecom:m1"}
        async with db.transaction() as s:
            assert await inbox.begin_handling(s, {"wecom:m1": "wecom", "wecom:m2": "wecom"}, now=later) == {"wecom:m2"}
        async with db.transaction() as s:
            assert await inbox.begin_handling(s, {"wecom:m1": "wecom", "wecom:m2": "wecom"}, now=later) == set()
        async with db.read() as s:
            assert await inbox.unhandled(s) == []
            row = (await s.execute(select(InboundUpdate).where(InboundUpdate.key == "wecom:m1"))).scalar_one()
        assert row.handled_at == later
        assert row.payload == '{"x": 1}'  # the payload is kept

    async def test_unhandled_is_oldest_first_and_limited(self, db: Database) -> None:
        async with db.transaction() as s:
            for i in range(5):
                await inbox.claim(s, f"wecom:{i}", "wecom", now=T0 + timedelta(seconds=i), handled=(i == 1))
        async with db.read() as s:
            assert [u.key for u in await inbox.unhandled(s)] == ["wecom:0", "wecom:2", "wecom:3", "wecom:4"]
            assert [u.key for u in await inbox.unhandled(s, limit=2)] == ["wecom:0", "wecom:2"]

    async def test_mark_handled_records_the_error(self, db: Database) -> None:
        async with db.transaction() as s:
            await inbox.claim(s, "wecom:bad", "wecom", now=T0, payload="{}")
            await inbox.claim(s, "wecom:good", "wecom", now=T0, payload="{}")
        done = T0 + timedelta(minutes=1)
        async with db.transaction() as s:
            await inbox.mark_handled(s, "wecom:bad", now=done, error="ValueError: no such member")
            await inbox.mark_handled(s, "wecom:good", now=done)
        async with db.read() as s:
            rows = {r.key: r for r in (await s.execute(select(InboundUpdate))).scalars()}
            assert await inbox.unhandled(s) == []
        assert rows["wecom:bad"].error == "ValueError: no such member"
        assert rows["wecom:bad"].handled_at == done
        assert rows["wecom:good"].error is None
        # A handled row, error or not, is never taken again.
        async with db.transaction() as s:
            assert await inbox.begin_handling(s, {"wecom:bad": "wecom"}, now=done) == set()

    # -- members and groups ---------------------------------------------------------------------

    async def test_touch_members_creates_then_adds_up(self, db: Database) -> None:
        async with db.transaction() as s:
            refs = await community.touch_members(
                s, sightings(("u1", "Alice", 2, "qr-spring"), ("u2", None, 0, None)), now=T0)
        assert set(refs) == {("sandbox", "u1"), ("sandbox", "u2")}
        assert refs[("sandbox", "u1")].name == "Alice"
        assert refs[("sandbox", "u1")].status == "active"
        assert refs[("sandbox", "u2")].name is None
        first_ids = {k: r.id for k, r in refs.items()}
        assert len(set(first_ids.values())) == 2

        t1 = T0 + timedelta(hours=1)
        async with db.transaction() as s:
            # Later sightings: no name (kept), a new source (ignored), then a new name (taken).
            refs = await community.touch_members(
                s, sightings(("u1", None, 3, "qr-autumn"), ("u2", "Bob", 1, "qr-x")), now=t1)
        assert {k: r.id for k, r in refs.items()} == first_ids  # the same members, not new ones
        assert refs[("sandbox", "u1")].name == "Alice"
        assert refs[("sandbox", "u2")].name == "Bob"

        async with db.transaction() as s:
            refs = await community.touch_members(s, sightings(("u1", "Alice W.", 1, None)), now=t1)
        assert refs[("sandbox", "u1")].name == "Alice W."

        u1, u2 = await member(db, "u1"), await member(db, "u2")
        assert (u1.name, u1.message_count, u1.channel_code) == ("Alice W.", 6, "qr-spring")
        assert (u2.name, u2.message_count, u2.channel_code) == ("Bob", 1, "qr-x")
        assert u1.first_seen_at == T0
        assert u1.last_seen_at == t1

        async with db.transaction() as s:
            assert await community.touch_members(s, {}, now=t1) == {}

    async def test_same_external_id_on_two_channels_is_two_members(self, db: Database) -> None:
        async with db.transaction() as s:
            refs = await community.touch_members(
                s, {("sandbox", "u1"): Sighting(name="A"), ("wecom", "u1"): Sighting(name="B")}, now=T0)
        assert refs[("sandbox", "u1")].id != refs[("wecom", "u1")].id
        assert refs[("wecom", "u1")].name == "B"

    async def test_sighting_merges_a_batch(self, db: Database) -> None:
        seen: dict[tuple[str, str], Sighting] = {}
        for name, spoke, state in [(None, True, None), ("Carol", True, "qr-1"), (None, False, "qr-2")]:
            seen.setdefault(("sandbox", "u3"), Sighting()).add(name=name, spoke=spoke, channel_code=state)
        async with db.transaction() as s:
            await community.touch_members(s, seen, now=T0)
        u3 = await member(db, "u3")
        assert (u3.name, u3.message_count, u3.channel_code) == ("Carol", 2, "qr-1")

    async def test_touch_groups_creates_then_adds_up(self, db: Database) -> None:
        async with db.transaction() as s:
            refs = await community.touch_groups(s, sightings(("g1", "Fans", 4, None), ("g2", None, 1, None)), now=T0)
        gid = refs[("sandbox", "g1")].id
        assert refs[("sandbox", "g1")].name == "Fans"
        assert refs[("sandbox", "g2")].name is None

        t1 = T0 + timedelta(minutes=10)
        async with db.transaction() as s:
            refs = await community.touch_groups(s, sightings(("g1", None, 5, None), ("g2", "VIP", 0, None)), now=t1)
        assert refs[("sandbox", "g1")].id == gid
        assert refs[("sandbox", "g1")].name == "Fans"
        assert refs[("sandbox", "g2")].name == "VIP"

        async with db.transaction() as s:
            refs = await community.touch_groups(s, sightings(("g1", "Fans 2026", 0, None)), now=t1)
        assert refs[("sandbox", "g1")].name == "Fans 2026"

        async with db.read() as s:
            g1 = (await s.execute(select(Group).where(Group.id == gid))).scalar_one()
        assert (g1.name, g1.message_count, g1.status) == ("Fans 2026", 9, "active")
        assert (g1.created_at, g1.last_active_at) == (T0, t1)

    async def _member_and_group(self, db: Database) -> tuple[int, int, int]:
        async with db.transaction() as s:
            members = await community.touch_members(s, sightings(("u1", None, 0, None), ("u2", None, 0, None)), now=T0)
            groups = await community.touch_groups(s, sightings(("g1", None, 0, None)), now=T0)
        return groups[("sandbox", "g1")].id, members[("sandbox", "u1")].id, members[("sandbox", "u2")].id

    async def test_record_spoken_implies_membership_and_counts(self, db: Database) -> None:
        g, u1, u2 = await self._member_and_group(db)
        async with db.transaction() as s:
            assert await community.group_member_count(s, g) == 0
            await community.record_spoken(s, {(g, u1): 2}, now=T0)
        t1 = T0 + timedelta(minutes=1)
        async with db.transaction() as s:
            await community.record_spoken(s, {(g, u1): 3, (g, u2): 1}, now=t1)
            await community.record_spoken(s, {}, now=t1)
            assert await community.group_member_count(s, g) == 2
        async with db.read() as s:
            rows = {r.member_id: r for r in (await s.execute(select(GroupMembership))).scalars()}
        assert rows[u1].message_count == 5
        assert rows[u2].message_count == 1
        assert rows[u1].joined_at == T0  # speaking again is not a new join
        assert rows[u1].last_spoke_at == t1
        assert rows[u1].left_at is None
        async with db.transaction() as s:
            # Already in the group through speaking: a join event now is not a new join.
            assert await community.record_join(s, g, u1, now=t1) is False

    async def test_record_join_leave_rejoin(self, db: Database) -> None:
        g, u1, u2 = await self._member_and_group(db)
        t1, t2, t3 = (T0 + timedelta(hours=h) for h in (1, 2, 3))
        async with db.transaction() as s:
            assert await community.record_join(s, g, u1, now=T0) is True
            assert await community.record_join(s, g, u1, now=t1) is False  # a repeated event
            assert await community.record_join(s, g, u2, now=t1) is True
            assert await community.group_member_count(s, g) == 2
        async with db.transaction() as s:
            assert await community.record_leave(s, g, u1, now=t2) is True
            assert await community.record_leave(s, g, u1, now=t2) is False  # already gone
            assert await community.group_member_count(s, g) == 1
        async with db.read() as s:
            row = (await s.execute(select(GroupMembership).where(GroupMembership.member_id == u1))).scalar_one()
        assert (row.joined_at, row.left_at) == (T0, t2)

        async with db.transaction() as s:
            assert await community.record_join(s, g, u1, now=t3) is True  # a real rejoin
            assert await community.group_member_count(s, g) == 2
        async with db.read() as s:
            row = (await s.execute(select(GroupMembership).where(GroupMembership.member_id == u1))).scalar_one()
        assert (row.joined_at, row.left_at) == (t3, None)

    async def test_leave_of_a_stranger_and_speaking_after_leaving(self, db: Database) -> None:
        g, u1, u2 = await self._member_and_group(db)
        async with db.transaction() as s:
            assert await community.record_leave(s, g, u2, now=T0) is False
            assert await community.record_join(s, g, u1, now=T0) is True
            assert await community.record_leave(s, g, u1, now=T0 + timedelta(seconds=1)) is True
            # We missed the rejoin, but they speak in the group: they are in it again.
            await community.record_spoken(s, {(g, u1): 1}, now=T0 + timedelta(seconds=2))
            assert await community.group_member_count(s, g) == 1
            assert await community.record_join(s, g, u1, now=T0 + timedelta(seconds=3)) is False

    # -- outbox ---------------------------------------------------------------------------------

    async def test_one_statement_reads_see_every_commit(self, db: Database) -> None:
        """``read_one`` (a member-center page's read) opens no transaction on SQLite: a pooled
        connection left in one would show every later page the data of that moment."""
        for n in range(1, 4):
            await enqueue(db, Outgoing(channel="sandbox", to=f"u{n}", text="hi"))
            for _ in range(5):  # more reads than the pool's connections
                async with db.read_one() as s:
                    rows = (await s.execute(select(OutboxMessage.id))).scalars().all()
                assert len(rows) == n

    async def test_enqueue_returns_ids_in_order(self, db: Database) -> None:
        texts = [f"m{i}" for i in range(25)]
        ids = await enqueue(db, *(Outgoing(channel="sandbox", chat="g1", text=t) for t in texts))
        assert len(ids) == 25
        assert ids == sorted(ids) and len(set(ids)) == 25
        for id_, text in zip(ids, texts, strict=True):
            row = await outbox_row(db, id_)
            assert (row.text, row.status, row.attempts) == (text, "pending", 0)
        assert await enqueue(db) == []

    async def test_claim_due_takes_due_rows_only(self, db: Database) -> None:
        ids = await enqueue(db, *(Outgoing(channel="sandbox", to=f"u{i}", text=f"m{i}") for i in range(3)))
        # m1 is scheduled for later: it is not due yet.
        async with db.transaction() as s:
            await s.execute(sa_update(OutboxMessage.__table__).where(OutboxMessage.__table__.c.id == ids[1])
                            .values(not_before=T0 + timedelta(seconds=20)))
        got = await claim(db, now=T0)
        assert [c.id for c in got] == [ids[0], ids[2]]
        assert [c.text for c in got] == ["m0", "m2"]
        assert all(c.attempts == 1 and c.to in ("u0", "u2") and c.channel == "sandbox" for c in got)

        # (Still inside the 30 s lease of m0 and m2, so only m1 can be due.)
        assert await claim(db, now=T0 + timedelta(seconds=19)) == []
        assert [c.id for c in await claim(db, now=T0 + timedelta(seconds=20))] == [ids[1]]

    async def test_claim_due_respects_limit_oldest_first(self, db: Database) -> None:
        ids = await enqueue(db, *(Outgoing(channel="sandbox", to=f"u{i}", text=f"m{i}") for i in range(5)))
        assert [c.id for c in await claim(db, now=T0, limit=2)] == ids[:2]
        assert [c.id for c in await claim(db, now=T0, limit=2)] == ids[2:4]
        assert [c.id for c in await claim(db, now=T0, limit=2)] == ids[4:]
        assert await claim(db, now=T0, limit=2) == []

    async def test_a_member_s_rows_wait_for_the_earlier_one_in_flight(self, db: Database) -> None:
        """Two passes (or processes) never send one conversation out of order."""
        ids = await enqueue(db, *(Outgoing(channel="sandbox", to="u1", text=f"m{i}") for i in range(3)),
                            Outgoing(channel="sandbox", to="u2", text="other"))
        first = await claim(db, now=T0, limit=1)
        assert [c.id for c in first] == ids[:1]
        assert [c.id for c in await claim(db, now=T0)] == [ids[3]]  # u1's later rows wait; u2's goes
        async with db.transaction() as s:
            await outbox.mark_delivered(s, first, now=T0)
        assert [c.id for c in await claim(db, now=T0)] == ids[1:3]

    async def test_claim_due_filters_by_channel(self, db: Database) -> None:
        ids = await enqueue(db, Outgoing(channel="sandbox", to="u1", text="a"),
                            Outgoing(channel="wecom", to="u1", text="b"))
        async with db.transaction() as s:
            got = await outbox.claim_due(s, now=T0, limit=10, lease=LEASE, channels=["wecom"])
        assert [c.id for c in got] == [ids[1]]

    async def test_claimed_row_is_leased_then_reclaimed(self, db: Database) -> None:
        [id_] = await enqueue(db, Outgoing(channel="sandbox", chat="g1", text="hi"))
        [first] = await claim(db, now=T0)
        assert (first.id, first.attempts) == (id_, 1)
        row = await outbox_row(db, id_)
        assert (row.status, row.claimed_until) == ("sending", T0 + LEASE)

        # While the lease runs, nobody else takes it.
        assert await claim(db, now=T0) == []
        assert await claim(db, now=T0 + LEASE - timedelta(seconds=1)) == []
        # The worker died: once the lease is over the row is due again, as a further attempt.
        [again] = await claim(db, now=T0 + LEASE + timedelta(seconds=1))
        assert (again.id, again.attempts) == (id_, 2)
        assert await claim(db, now=T0 + LEASE + timedelta(seconds=1)) == []

    async def test_mark_delivered_retry_failed(self, db: Database) -> None:
        ids = await enqueue(db, *(Outgoing(channel="sandbox", chat="g1", text=f"m{i}") for i in range(3)))
        await claim(db, now=T0)
        t1 = T0 + timedelta(seconds=2)
        async with db.transaction() as s:
            await outbox.mark_delivered(s, [ids[0]], now=t1)
            await outbox.mark_retry(s, ids[1], error="429 too many", not_before=t1 + timedelta(seconds=60))
            await outbox.mark_failed(s, ids[2], error="user blocked the bot")
            await outbox.mark_delivered(s, [], now=t1)

        d, r, f = [await outbox_row(db, i) for i in ids]
        assert (d.status, d.delivered_at, d.claimed_until, d.last_error) == ("delivered", t1, None, None)
        assert (r.status, r.not_before, r.claimed_until, r.last_error) == (
            "pending", t1 + timedelta(seconds=60), None, "429 too many")
        assert (f.status, f.claimed_until, f.last_error, f.delivered_at) == (
            "failed", None, "user blocked the bot", None)

        # Settled rows are never claimed again; the retried one only when due.
        far = T0 + timedelta(days=1)
        assert await claim(db, now=t1 + timedelta(seconds=59)) == []
        got = await claim(db, now=far)
        assert [(c.id, c.attempts) for c in got] == [(ids[1], 2)]
        async with db.transaction() as s:
            await outbox.mark_delivered(s, [ids[1]], now=far)
        r = await outbox_row(db, ids[1])
        assert (r.status, r.last_error) == ("delivered", None)  # the old error does not linger
        assert await claim(db, now=far + timedelta(days=1)) == []

    async def test_mark_delivered_ignores_rows_not_being_sent(self, db: Database) -> None:
        ids = await enqueue(db, Outgoing(channel="sandbox", to="u1", text="a"),
                            Outgoing(channel="sandbox", to="u1", text="b"))
        assert [c.id for c in await claim(db, now=T0)] == ids
        async with db.transaction() as s:
            await outbox.mark_failed(s, ids[1], error="gone")
        async with db.transaction() as s:
            await outbox.mark_delivered(s, [ids[0], ids[1]], now=T0)
        assert (await outbox_row(db, ids[0])).status == "delivered"
        assert (await outbox_row(db, ids[1])).status == "failed"

    async def test_rows_marked_together_get_new_delivery_numbers_in_order(self, db: Database) -> None:
        ids = await enqueue(db, *(Outgoing(channel="sandbox", chat=f"g{n}", text=str(n)) for n in range(5)))
        await claim(db, now=T0)
        async with db.transaction() as s:
            await outbox.mark_delivered(s, [ids[3]], now=T0)
        async with db.transaction() as s:
            await outbox.mark_delivered(s, [ids[0], ids[4], ids[1]], now=T0)
        seqs = [(await outbox_row(db, i)).delivered_seq for i in ids]
        assert seqs[2] is None  # not delivered: no number
        first, *together = seqs[3], seqs[0], seqs[1], seqs[4]
        assert first is not None and all(n is not None and n > first for n in together)
        assert len(set(together)) == 3

    async def test_delivered_filters_and_comes_in_delivery_order(self, db: Database) -> None:
        ids = await enqueue(
            db,
            Outgoing(channel="sandbox", chat="g1", text="g1-a"),
            Outgoing(channel="sandbox", to="u1", text="u1-a"),
            Outgoing(channel="sandbox", chat="g2", text="g2-a"),
            Outgoing(channel="wecom", chat="g1", text="wecom-g1"),
            Outgoing(channel="sandbox", chat="g1", text="g1-b"),
            Outgoing(channel="sandbox", to="u1", text="u1-b"),
            Outgoing(channel="sandbox", chat="g1", text="g1-pending"),
        )
        await claim(db, now=T0)
        # Delivered in reverse order (as rows sent late, after a crash, are): they come back in
        # the order they were delivered, and paging by delivery number skips none of them.
        async with db.transaction() as s:
            for id_ in reversed(ids[:6]):
                await outbox.mark_delivered(s, [id_], now=T0)
            await outbox.mark_retry(s, ids[6], error="x", not_before=T0)

        async def rows(**kw: object) -> list[outbox.OutboxMessage]:
            async with db.read() as s:
                return await outbox.delivered(s, **kw)  # type: ignore[arg-type]

        async def texts(**kw: object) -> list[str]:
            return [m.text for m in await rows(**kw)]

        assert await texts(channel="sandbox") == ["u1-b", "g1-b", "g2-a", "u1-a", "g1-a"]
        assert await texts(channel="sandbox", chat="g1") == ["g1-b", "g1-a"]
        assert await texts(channel="sandbox", to="u1") == ["u1-b", "u1-a"]
        first_two = await rows(channel="sandbox", limit=2)
        assert [m.text for m in first_two] == ["u1-b", "g1-b"]
        assert await texts(channel="sandbox", since=first_two[-1].delivered_seq) == ["g2-a", "u1-a", "g1-a"]
        everything = await rows(channel="sandbox")
        assert await texts(channel="sandbox", since=everything[-1].delivered_seq) == []
        assert await texts(channel="wecom") == ["wecom-g1"]
        assert await texts(channel="sandbox", chat="nope") == []

    async def test_counts_by_status(self, db: Database) -> None:
        async with db.read() as s:
            assert await outbox.counts_by_status(s) == {}
        ids = await enqueue(db, *(Outgoing(channel="sandbox", to="u1", text=f"m{i}") for i in range(6)))
        await claim(db, now=T0, limit=4)
        async with db.transaction() as s:
            await outbox.mark_delivered(s, ids[:2], now=T0)
            await outbox.mark_failed(s, ids[2], error="no")
        async with db.read() as s:
            assert await outbox.counts_by_status(s) == {"delivered": 2, "failed": 1, "sending": 1, "pending": 2}

    async def test_for_update_lists_what_one_update_said(self, db: Database) -> None:
        await enqueue(
            db,
            Outgoing(channel="sandbox", to="u1", text="first", update_key="sandbox:1"),
            Outgoing(channel="sandbox", to="u2", text="other", update_key="sandbox:2"),
            Outgoing(channel="sandbox", chat="g1", text="second", update_key="sandbox:1"),
        )
        async with db.read() as s:
            assert [m.text for m in await outbox.for_update(s, "sandbox:1")] == ["first", "second"]
            assert await outbox.for_update(s, "sandbox:404") == []

    async def test_concurrent_claims_never_share_a_row(self, db: Database, backend: str) -> None:
        if backend != "postgresql":
            pytest.skip("concurrent writers need PostgreSQL; SQLite queues writers on one lock")
        ids = await enqueue(db, *(Outgoing(channel="sandbox", to=f"u{i}", text=f"m{i}") for i in range(200)))

        # A claims and keeps its transaction open; B claims meanwhile and must neither wait for
        # A's locks nor get A's rows.
        a_claimed, b_done = asyncio.Event(), asyncio.Event()
        claimed: dict[str, list[int]] = {}

        async def worker_a() -> None:
            async with db.transaction() as s:
                claimed["a"] = [c.id for c in await outbox.claim_due(s, now=T0, limit=120, lease=LEASE)]
                a_claimed.set()
                await b_done.wait()

        async def worker_b() -> None:
            await a_claimed.wait()
            try:
                async with db.transaction() as s:
                    claimed["b"] = [c.id for c in await outbox.claim_due(s, now=T0, limit=120, lease=LEASE)]
            finally:
                b_done.set()

        await asyncio.wait_for(asyncio.gather(worker_a(), worker_b()), timeout=10)
        assert len(claimed["a"]) == 120
        assert len(claimed["b"]) == 80  # skipped A's locked rows and took the rest, without blocking
        assert not set(claimed["a"]) & set(claimed["b"])
        assert sorted(claimed["a"] + claimed["b"]) == ids

    async def test_concurrent_small_batches_never_share_a_row(self, db: Database, backend: str) -> None:
        if backend != "postgresql":
            pytest.skip("concurrent writers need PostgreSQL; SQLite queues writers on one lock")
        ids = await enqueue(db, *(Outgoing(channel="sandbox", to=f"u{i}", text=f"m{i}") for i in range(200)))
        taken: list[list[int]] = [[], [], [], []]

        async def worker(n: int) -> None:
            while True:
                async with db.transaction() as s:
                    batch = await outbox.claim_due(s, now=T0, limit=7, lease=LEASE)
                    await asyncio.sleep(0)  # let the other transactions run while this one holds its rows
                if not batch:
                    return
                taken[n].extend(c.id for c in batch)

        await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(4))), timeout=30)
        everything = [i for t in taken for i in t]
        assert sorted(everything) == ids  # every row once, none twice
        assert sum(1 for t in taken if t) >= 2  # the claims really were concurrent
    async def test_stale_worker_cannot_undo_a_delivery(self, db: Database) -> None:
        ids = await enqueue(db, Outgoing(channel="sandbox", to="u1", text="a"),
                            Outgoing(channel="sandbox", to="u1", text="b"))
        await claim(db, now=T0)  # worker A, then A is slow past its lease
        later = T0 + LEASE + timedelta(seconds=1)
        reclaimed = await claim(db, now=later)  # worker B takes both over and delivers them
        assert [c.id for c in reclaimed] == ids
        async with db.transaction() as s:
            await outbox.mark_delivered(s, ids, now=later)
        # A finally gives its (stale) verdicts.
        async with db.transaction() as s:
            await outbox.mark_retry(s, ids[0], error="A: timed out", not_before=later)
            await outbox.mark_failed(s, ids[1], error="A: gave up")
        assert [(await outbox_row(db, i)).status for i in ids] == ["delivered", "delivered"]
        assert await claim(db, now=later + timedelta(minutes=1)) == []  # nothing is sent a second time

    async def test_racing_workers_take_a_stored_update_once(self, db: Database, backend: str) -> None:
        if backend != "postgresql":
            pytest.skip("concurrent writers need PostgreSQL; SQLite queues writers on one lock")
        async with db.transaction() as s:
            await inbox.claim(s, "wecom:m1", "wecom", now=T0, payload="{}")
        a_took, b_started = asyncio.Event(), asyncio.Event()
        results: dict[str, set[str]] = {}

        async def worker_a() -> None:
            async with db.transaction() as s:
                results["a"] = await inbox.begin_handling(s, {"wecom:m1": "wecom"}, now=T0)
                a_took.set()
                await b_started.wait()
                await asyncio.sleep(0.05)  # B is now waiting on A's row lock

        async def worker_b() -> None:
            await a_took.wait()
            b_started.set()
            async with db.transaction() as s:
                results["b"] = await inbox.begin_handling(s, {"wecom:m1": "wecom"}, now=T0)

        await asyncio.wait_for(asyncio.gather(worker_a(), worker_b()), timeout=10)
        assert results == {"a": {"wecom:m1"}, "b": set()}

    async def test_racing_worker_takes_the_update_when_the_other_rolls_back(self, db: Database, backend: str) -> None:
        if backend != "postgresql":
            pytest.skip("concurrent writers need PostgreSQL; SQLite queues writers on one lock")
        async with db.transaction() as s:
            await inbox.claim(s, "wecom:m1", "wecom", now=T0, payload="{}")
        a_took, b_started = asyncio.Event(), asyncio.Event()
        results: dict[str, set[str]] = {}

        class HandlerFailed(Exception):
            pass

        async def worker_a() -> None:
            with pytest.raises(HandlerFailed):
                async with db.transaction() as s:
                    results["a"] = await inbox.begin_handling(s, {"wecom:m1": "wecom"}, now=T0)
                    a_took.set()
                    await b_started.wait()
                    await asyncio.sleep(0.05)
                    raise HandlerFailed

        async def worker_b() -> None:
            await a_took.wait()
            b_started.set()
            async with db.transaction() as s:
                results["b"] = await inbox.begin_handling(s, {"wecom:m1": "wecom"}, now=T0)

        await asyncio.wait_for(asyncio.gather(worker_a(), worker_b()), timeout=10)
        assert results == {"a": {"wecom:m1"}, "b": {"wecom:m1"}}
        async with db.read() as s:
            assert await inbox.unhandled(s) == []

    # -- timestamps ----------------------------------------------------------------------------

    async def test_timestamps_come_back_aware_utc(self, db: Database) -> None:
        beijing = timezone(timedelta(hours=8))
        local = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=beijing)  # 02:00:00.123456 UTC
        async with db.transaction() as s:
            await community.touch_members(s, sightings(("u1", None, 0, None)), now=local)
            [id_] = await outbox.enqueue(s, [Outgoing(channel="sandbox", to="u1", text="x")], now=local)
            await inbox.claim(s, "k", "sandbox", now=local)
            await audit.record(s, actor="system", action="t", result="ok", now=local)
        async with db.read() as s:
            u1 = (await s.execute(select(Member))).scalar_one()
            row = (await s.execute(select(OutboxMessage))).scalar_one()
            upd = (await s.execute(select(InboundUpdate))).scalar_one()
            [entry] = await audit.latest(s)
        for value in (u1.first_seen_at, u1.last_seen_at, row.not_before, row.created_at, upd.received_at, entry.at):
            assert value.tzinfo is not None
            assert value.utcoffset() == timedelta(0)
            assert value == local
            assert value.hour == 2 and value.microsecond == 123456
        assert row.claimed_until is None and row.delivered_at is None

        # A claim made from a zone other than UTC compares on the instant, not on the wall clock.
        got = await claim(db, now=local.astimezone(beijing) - timedelta(seconds=1))
        assert got == []
        [c] = await claim(db, now=local)
        assert c.id == id_
        claimed = await outbox_row(db, id_)
        assert claimed.claimed_until == local + LEASE
        assert claimed.claimed_until.utcoffset() == timedelta(0)

    async def test_naive_datetime_is_refused(self, db: Database) -> None:
        with pytest.raises(StatementError, match="naive datetime"):
            async with db.transaction() as s:
                await audit.record(s, actor="system", action="t", result="ok", now=datetime(2026, 1, 1))
        async with db.read() as s:
            assert await audit.latest(s) == []

    # -- audit ----------------------------------------------------------------------------------

    async def test_audit_is_append_only_newest_first(self, db: Database) -> None:
        async with db.transaction() as s:
            await audit.record(s, actor="sandbox:op1", action="broadcast", result="ok", now=T0,
                               args={"group": "g1", "text": "你好", "n": 3})
            await audit.record(s, actor="sandbox:u9", action="broadcast", result="refused", now=T0,
                               detail="not an operator")
        async with db.transaction() as s:
            await audit.record(s, actor="system", action="cleanup", result="error",
                               now=T0 + timedelta(minutes=1), detail="boom")
        async with db.read() as s:
            entries = await audit.latest(s)
            assert [e.action for e in await audit.latest(s, limit=2)] == ["cleanup", "broadcast"]
        assert [(e.actor, e.result) for e in entries] == [
            ("system", "error"), ("sandbox:u9", "refused"), ("sandbox:op1", "ok"),
        ]
        assert entries[2].args == {"group": "g1", "text": "你好", "n": 3}
        assert entries[1].args == {}
        assert entries[1].detail == "not an operator"
        assert entries[0].at == T0 + timedelta(minutes=1)
