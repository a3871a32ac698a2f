"""A platform's existing customers and groups, written page by page (a channel's day-one sync),
and the run's progress, so that a restart continues where the last run stopped.

Every write compares with what is stored first: a second sync of unchanged data writes
nothing and reports nothing changed. Members, groups and memberships are the tables of
``storage.community``; relationships those of ``storage.relationships``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Column, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage import relationships
from storage.community import GM, G, M
from storage.sql import rowcount, table_of
from storage.types import utc_field
from storage.upsert import insert_for


class SyncRun(SQLModel, table=True):
    """One channel's sync: where it stands (``progress``: cursors and phase), what it counted and
    the API errors it met; ``finished_at`` None while a run is under way or was cut short.
    ``lease_until`` keeps a second process from running the same sync at once."""

    __tablename__ = "sync_runs"

    name: str = Field(max_length=32, primary_key=True)
    started_at: datetime = utc_field()
    finished_at: datetime | None = utc_field(default=None)
    lease_until: datetime | None = utc_field(default=None)
    progress: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    errors: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


S = table_of(SyncRun)
CHUNK = 1000


@dataclass
class RunState:
    started_at: datetime
    resumed: bool
    progress: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def last_finished(session: AsyncSession, name: str) -> datetime | None:
    return (await session.execute(select(S.c.finished_at).where(S.c.name == name))).scalar_one_or_none()


async def claim(session: AsyncSession, name: str, *, now: datetime, lease: timedelta) -> RunState | None:
    """Take the sync for ``lease``: continue a run cut short, or start a new one. None when
    another process holds it."""
    row = (await session.execute(select(SyncRun).where(SyncRun.name == name))).scalar_one_or_none()  # type: ignore[arg-type]
    if row is None:
        stmt = insert_for(session, S).values(name=name, started_at=now, lease_until=now + lease, progress={},
                                              counts={}, errors=[]).on_conflict_do_nothing()
        if (await session.execute(stmt.returning(S.c.name))).first() is None:
            return None
        return RunState(now, resumed=False)
    resumed = row.finished_at is None
    claimed = await session.execute(
        update(S).where(S.c.name == name, (S.c.lease_until.is_(None)) | (S.c.lease_until < now))
        .values(lease_until=now + lease, **({} if resumed else
                                           {"started_at": now, "finished_at": None, "progress": {}, "counts": {},
                                            "errors": []}))
    )
    if rowcount(claimed) == 0:
        return None
    if not resumed:
        return RunState(now, resumed=False)
    return RunState(row.started_at, resumed=True, progress=dict(row.progress or {}), counts=dict(row.counts or {}),
                    errors=list(row.errors or []))


async def save(session: AsyncSession, name: str, state: RunState, *, now: datetime, lease: timedelta,
               finished: bool = False) -> None:
    """Store where the run stands (after a page is written, in the page's transaction)."""
    await session.execute(update(S).where(S.c.name == name).values(
        progress=state.progress, counts=state.counts, errors=state.errors[-50:],
        lease_until=None if finished else now + lease, finished_at=now if finished else None,
    ))


async def release(session: AsyncSession, name: str) -> None:
    """Give the lease back (a run cut short); the progress stays for the next run."""
    await session.execute(update(S).where(S.c.name == name).values(lease_until=None))


async def refresh_statistics(session: AsyncSession) -> None:
    """PostgreSQL: refresh the planner's statistics of the tables a sync fills. Loading tens of
    thousands of members into a young table leaves the planner believing it holds a few rows,
    and then it reads every member for each page's lookup (seen here: 0.3 s a page at 70,000
    members, against milliseconds after ANALYZE); autovacuum catches up only later."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("ANALYZE members, staff_relationships, chat_groups, group_memberships"))


@dataclass(frozen=True, slots=True)
class Person:
    """A member as the platform lists them: their id, name, and since when they are known."""

    external_id: str
    name: str | None
    since: datetime
    channel_code: str | None = None


async def people(session: AsyncSession, channel: str, seen: Sequence[Person], counts: dict[str, int], *,
                 names_win: bool = True) -> dict[str, int]:
    """The members ``seen``, created or brought up to date; returns external id → member id.
    A member is known from the earliest time the platform says (their first-seen date is not
    the day of the sync, so the sync adds nobody to the day's new members). With ``names_win``
    a listed name replaces the stored one; otherwise it only fills a missing one."""
    by_id: dict[str, Person] = {}
    for p in seen:
        known = by_id.get(p.external_id)
        if known is None or p.since < known.since:
            by_id[p.external_id] = Person(p.external_id, p.name or (known.name if known else None), p.since,
                                          p.channel_code or (known.channel_code if known else None))
    if not by_id:
        return {}
    cols = (M.c.id, M.c.external_id, M.c.name, M.c.channel_code, M.c.first_seen_at)

    async def read(keys: list[str]) -> dict[str, Any]:
        # In chunks: a page of groups may name tens of thousands of members, past the number of
        # parameters a statement may have (SQLite 32,766, PostgreSQL 65,535).
        found: dict[str, Any] = {}
        for i in range(0, len(keys), CHUNK):
            found |= {r.external_id: r for r in await session.execute(
                select(*cols).where(M.c.channel == channel, M.c.external_id.in_(keys[i:i + CHUNK])))}
        return found

    stored = await read(sorted(by_id))
    new = [{"channel": channel, "external_id": e, "name": p.name, "channel_code": p.channel_code, "status": "active",
            "message_count": 0, "first_seen_at": p.since, "last_seen_at": p.since}
           for e, p in sorted(by_id.items()) if e not in stored]
    if new:
        await session.execute(insert_for(session, M).on_conflict_do_nothing(), new)
        counts["members_added"] = counts.get("members_added", 0) + len(new)
        stored |= await read([str(n["external_id"]) for n in new])
    for e, p in sorted(by_id.items()):
        row = stored[e]
        values: dict[str, Any] = {}
        if p.name and row.name != p.name and (names_win or not row.name):
            values["name"] = p.name
        if p.channel_code and not row.channel_code:
            values["channel_code"] = p.channel_code
        if p.since < row.first_seen_at:
            values["first_seen_at"] = p.since
        if values:
            await session.execute(update(M).where(M.c.id == row.id).values(**values))
            counts["members_changed"] = counts.get("members_changed", 0) + 1
    return {e: r.id for e, r in stored.items()}


async def customers(session: AsyncSession, channel: str, staff_seen: Sequence[tuple[Person, str, str | None]],
                    counts: dict[str, int]) -> None:
    """One page of a staff member's customers: (person, staff userid, remark) each, written as
    members and relationships. A customer listed by WeCom is a customer again if siyu had them
    as lost."""
    ids = await people(session, channel, [p for p, _, _ in staff_seen], counts)
    seen = [relationships.Seen(ids[p.external_id], staff, p.since, p.channel_code, remark)
            for p, staff, remark in staff_seen]
    added, changed = await relationships.merge(session, seen)
    counts["relationships_added"] = counts.get("relationships_added", 0) + added
    counts["relationships_changed"] = counts.get("relationships_changed", 0) + changed
    back = await session.execute(update(M).where(M.c.id.in_(sorted(set(ids.values()))), M.c.status == "lost")
                                 .values(status="active", lost_at=None))
    counts["members_changed"] = counts.get("members_changed", 0) + rowcount(back)


@dataclass(frozen=True, slots=True)
class GroupSeen:
    external_id: str
    name: str | None
    owner: str | None
    version: str | None
    created: datetime
    members: tuple[Person, ...]  # ``since``: when they joined


async def groups(session: AsyncSession, channel: str, seen: Sequence[GroupSeen], counts: dict[str, int], *,
                 now: datetime) -> None:
    """A page of groups as the platform describes them: the group rows, their members, and who
    is in which (joins dated from the platform's join time, leaves from now). A handful of
    statements for the whole page, whatever its size: each round trip counts on a busy server."""
    if not seen:
        return
    stored = {r.external_id: r for r in await session.execute(
        select(G.c.id, G.c.external_id, G.c.name, G.c.owner, G.c.member_version, G.c.status)
        .where(G.c.channel == channel, G.c.external_id.in_(sorted(g.external_id for g in seen))))}
    group_ids: dict[str, int] = {}
    for g in seen:
        wanted = {"name": g.name, "owner": g.owner, "member_version": g.version, "status": "active"}
        row = stored.get(g.external_id)
        if row is None:
            stmt = insert_for(session, G).values(channel=channel, external_id=g.external_id, message_count=0,
                                                 created_at=g.created, last_active_at=g.created, **wanted)
            group_ids[g.external_id] = (await session.execute(stmt.returning(G.c.id))).scalar_one()
            counts["groups_added"] = counts.get("groups_added", 0) + 1
            continue
        group_ids[g.external_id] = row.id
        values = {k: v for k, v in wanted.items() if getattr(row, k) != v and (v is not None or k == "status")}
        if values:
            await session.execute(update(G).where(G.c.id == row.id).values(**values))
            counts["groups_changed"] = counts.get("groups_changed", 0) + 1
    ids = await people(session, channel, [p for g in seen for p in g.members], counts, names_win=False)
    current: dict[int, set[int]] = {}
    for r in await session.execute(select(GM.c.group_id, GM.c.member_id).where(
            GM.c.group_id.in_(sorted(group_ids.values())), GM.c.left_at.is_(None))):
        current.setdefault(r.group_id, set()).add(r.member_id)
    joins = []
    for g in seen:
        group_id = group_ids[g.external_id]
        joined = {ids[p.external_id]: p.since for p in g.members}
        inside = current.get(group_id, set())
        joins += [{"group_id": group_id, "member_id": m, "joined_at": t, "message_count": 0}
                  for m, t in sorted(joined.items()) if m not in inside]
        gone = sorted(inside - set(joined))
        if gone:
            await session.execute(update(GM).where(GM.c.group_id == group_id, GM.c.member_id.in_(gone),
                                                   GM.c.left_at.is_(None)).values(left_at=now))
            counts["group_leaves"] = counts.get("group_leaves", 0) + len(gone)
    if joins:
        stmt = insert_for(session, GM)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[GM.c.group_id, GM.c.member_id],
            set_={"joined_at": stmt.excluded.joined_at, "left_at": None}), joins)
        counts["group_joins"] = counts.get("group_joins", 0) + len(joins)
