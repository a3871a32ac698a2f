"""The membership stage's writes of a batch (``storage.membership_batch.touch_all``): on every
backend the same members, groups, memberships and active days as the four statements it
stands for (one on PostgreSQL), with the same rules; part of the storage contract."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from storage import community, membership_batch
from storage.engine import Database
from storage.models import Group, GroupMembership, MemberDay
from tests.test_storage_contract import T0, backend, db, member, migrated_url, sightings

__all__ = ["backend", "db", "migrated_url"]  # the contract's fixtures, one run per backend

G1, G2 = ("sandbox", "g1"), ("sandbox", "g2")
U1, U2, U3 = ("sandbox", "u1"), ("sandbox", "u2"), ("sandbox", "u3")
DAY = date(2026, 11, 22)


async def test_a_batch_creates_then_adds_up_as_the_single_statements_do(db: Database) -> None:
    async with db.transaction() as s:
        members, groups = await membership_batch.touch_all(
            s, sightings(("u1", "小王", 2, "qr-spring"), ("u2", None, 1, None), ("u3", "小李", 0, None)),
            sightings(("g1", "粉丝群", 2, None), ("g2", None, 1, None)),
            {(G1, U1): 2, (G2, U2): 1}, {U1, U2}, day=DAY, now=T0)
    assert set(members) == {U1, U2, U3} and set(groups) == {G1, G2}
    assert (members[U1].name, members[U1].status, members[U1].message_count) == ("小王", "active", 2)
    assert groups[G1].name == "粉丝群" and groups[G2].name is None
    ids = {k: r.id for k, r in members.items()}

    t1 = T0 + timedelta(hours=1)
    async with db.transaction() as s:
        # u1 left g1 since: speaking there again puts them back in it.
        await community.record_leave(s, groups[G1].id, ids[U1], now=T0 + timedelta(minutes=1))
        # Later: no name (kept), another channel code (the first one stays), a new name (taken).
        members, groups = await membership_batch.touch_all(
            s, sightings(("u1", None, 3, "qr-autumn"), ("u2", "阿强", 1, "qr-x")),
            sightings(("g1", None, 3, None)), {(G1, U1): 2, (G1, U2): 1}, {U1}, day=DAY + timedelta(days=1), now=t1)
    assert {k: r.id for k, r in members.items()} == {U1: ids[U1], U2: ids[U2]}  # the same members
    assert (members[U1].name, members[U1].message_count) == ("小王", 5)
    assert members[U2].name == "阿强"

    u1, u2 = await member(db, "u1"), await member(db, "u2")
    assert (u1.channel_code, u1.first_seen_at, u1.last_seen_at) == ("qr-spring", T0, t1)
    assert (u2.name, u2.message_count, u2.channel_code) == ("阿强", 2, "qr-x")
    async with db.read() as s:
        g1 = (await s.execute(select(Group).where(Group.external_id == "g1"))).scalar_one()
        spoke = {(r.group_id, r.member_id): r for r in (await s.execute(select(GroupMembership))).scalars()}
        days = {(r.member_id, r.day) for r in (await s.execute(select(MemberDay))).scalars()}
    assert (g1.name, g1.message_count, g1.created_at, g1.last_active_at) == ("粉丝群", 5, T0, t1)
    in_g1 = spoke[(g1.id, ids[U1])]
    assert (in_g1.message_count, in_g1.joined_at, in_g1.last_spoke_at, in_g1.left_at) == (4, T0, t1, None)
    assert spoke[(g1.id, ids[U2])].message_count == 1
    assert len(spoke) == 3  # u3 said nothing in a group: in none
    assert days == {(ids[U1], DAY), (ids[U2], DAY), (ids[U1], DAY + timedelta(days=1))}


async def test_a_batch_without_groups_touches_members_only(db: Database) -> None:
    async with db.transaction() as s:
        members, groups = await membership_batch.touch_all(
            s, sightings(("u1", "小王", 1, None)), {}, {}, {U1}, day=DAY, now=T0)
        again, _ = await membership_batch.touch_all(s, sightings(("u1", None, 1, None)), {}, {}, {U1}, day=DAY, now=T0)
    assert groups == {} and again[U1].id == members[U1].id and again[U1].message_count == 2
    async with db.read() as s:
        assert [(r.member_id, r.day) for r in (await s.execute(select(MemberDay))).scalars()] == [(members[U1].id, DAY)]
