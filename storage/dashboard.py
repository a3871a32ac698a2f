"""What the console reads: the rollups (``storage.rollups``) for numbers over time, and the
small live tables (KOC applications, polls) for what is true this minute. Every query here is
either over rollup rows or bounded by an index and a limit: a page stays fast on a million
members."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Float, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from storage.community import Group
from storage.flows import MemberFlow
from storage.koc import KocApplication
from storage.polls import Poll, PollVote
from storage.rollups import CohortRetention, DailyMetric, GroupDay

Series = dict[str, dict[date, dict[str, int]]]  # metric -> day -> dimension -> value
GROUP_SORTS = ("name", "members", "active_7d", "rate", "messages", "last_active")


async def series(session: AsyncSession, first: date, last: date) -> Series:
    """Every rolled-up number of the days ``first..last``."""
    out: Series = defaultdict(lambda: defaultdict(dict))
    rows = await session.execute(select(col(DailyMetric.day), col(DailyMetric.metric), col(DailyMetric.dimension),
                                        col(DailyMetric.value))
                                 .where(col(DailyMetric.day) >= first, col(DailyMetric.day) <= last))
    for day, metric, dimension, value in rows:
        out[metric][day][dimension] = value
    return out


async def latest_snapshot(session: AsyncSession, on_or_before: date) -> date | None:
    """The day of the newest group snapshot not after ``on_or_before``."""
    return (await session.execute(select(func.max(col(GroupDay.day)))
                                  .where(col(GroupDay.day) <= on_or_before))).scalar_one()


@dataclass(frozen=True)
class GroupRow:
    id: int
    external_id: str
    name: str | None
    channel: str
    owner: str | None
    members: int
    active_7d: int
    messages: int
    last_active: Any

    @property
    def rate(self) -> float | None:
        return self.active_7d / self.members if self.members else None


async def groups(session: AsyncSession, day: date, *, sort: str = "rate", descending: bool = False,
                 search: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[GroupRow], int]:
    """One page of the groups as of the snapshot ``day``, and how many there are in all."""
    # float, not numeric: PostgreSQL sorts 10,000 of these for every page
    rate = cast(col(GroupDay.active_7d), Float) / func.nullif(col(GroupDay.members), 0)
    keys = {"name": func.coalesce(col(Group.name), col(Group.external_id)), "members": col(GroupDay.members),
            "active_7d": col(GroupDay.active_7d), "rate": rate, "messages": col(GroupDay.messages),
            "last_active": col(Group.last_active_at)}
    order = keys[sort].desc() if descending else keys[sort].asc()
    base = (select(Group, GroupDay).join(GroupDay, col(GroupDay.group_id) == col(Group.id))
            .where(col(GroupDay.day) == day))
    if search:
        pattern = f"%{search}%"
        base = base.where((col(Group.name).like(pattern)) | (col(Group.external_id).like(pattern)))
    total = (await session.execute(select(func.count()).select_from(base.subquery()))).scalar_one()
    rows = await session.execute(base.order_by(order.nulls_last(), col(Group.id)).limit(limit).offset(offset))
    page = []
    for g, d in rows:
        page.append(GroupRow(g.id, g.external_id, g.name, g.channel, g.owner, d.members, d.active_7d, d.messages,
                             g.last_active_at))
    return page, total


async def group_counts(session: AsyncSession, day: date, *, size_limit: int) -> dict[str, int]:
    """Groups in the snapshot, silent ones (nobody spoke in 7 days), those at 90% of the size limit."""
    row = (await session.execute(select(
        func.count(), func.count().filter(col(GroupDay.active_7d) == 0),
        func.count().filter(col(GroupDay.members) * 10 >= size_limit * 9),
    ).where(col(GroupDay.day) == day))).one()
    return {"groups": row[0], "silent": row[1], "near_limit": row[2]}


async def daily_messages(session: AsyncSession, group_ids: Sequence[int], first: date,
                         last: date) -> dict[int, list[int]]:
    """Messages per day of each group over ``first..last`` (0 where no snapshot), from the
    difference of its daily message counters."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    seen: dict[int, dict[date, int]] = defaultdict(dict)
    if group_ids:
        rows = await session.execute(select(col(GroupDay.group_id), col(GroupDay.day), col(GroupDay.messages)).where(
            col(GroupDay.group_id).in_(list(group_ids)), col(GroupDay.day) >= first - timedelta(days=1),
            col(GroupDay.day) <= last))
        for gid, day, messages in rows:
            seen[gid][day] = messages
    out = {}
    for gid in group_ids:
        counters = seen.get(gid, {})
        out[gid] = [max(0, counters[d] - counters[d - timedelta(days=1)])
                    if d in counters and d - timedelta(days=1) in counters else 0 for d in days]
    return out


async def group_history(session: AsyncSession, group_id: int, first: date, last: date) -> list[GroupDay]:
    return list((await session.execute(select(GroupDay).where(
        col(GroupDay.group_id) == group_id, col(GroupDay.day) >= first, col(GroupDay.day) <= last,
    ).order_by(col(GroupDay.day)))).scalars())


@dataclass(frozen=True)
class Retention:
    """Members of some cohorts, and how many came back on day 1, 7, 30 out of the members whose
    day N has ended (``known``): a cohort too young for D30 counts in neither."""

    label: str
    size: int
    back: dict[str, int]
    known: dict[str, int]

    def rate(self, n: str) -> float | None:
        return self.back[n] / self.known[n] if self.known.get(n) else None


def _fold(label: str, rows: list[CohortRetention]) -> Retention:
    back = {k: sum(getattr(r, k) for r in rows if getattr(r, k) is not None) for k in ("d1", "d7", "d30")}
    known = {k: sum(r.size for r in rows if getattr(r, k) is not None) for k in ("d1", "d7", "d30")}
    return Retention(label, sum(r.size for r in rows), back, known)


async def retention(session: AsyncSession, first: date, last: date) -> tuple[list[Retention], list[Retention]]:
    """D1/D7/D30 retention of the cohorts ``first..last``: by join day, and by channel code
    (the biggest codes first)."""
    rows = list((await session.execute(select(CohortRetention).where(
        col(CohortRetention.cohort) >= first, col(CohortRetention.cohort) <= last,
    ).order_by(col(CohortRetention.cohort)))).scalars())
    by_day: dict[date, list[CohortRetention]] = defaultdict(list)
    by_code: dict[str, list[CohortRetention]] = defaultdict(list)
    for r in rows:
        by_day[r.cohort].append(r)
        by_code[r.channel_code].append(r)
    codes = sorted(by_code.items(), key=lambda kv: -sum(r.size for r in kv[1]))
    return [_fold(d.isoformat(), g) for d, g in sorted(by_day.items())], [_fold(code, g) for code, g in codes]


async def koc_funnel(session: AsyncSession) -> dict[str, Any]:
    """Screenings started, applications pending, approved by type, rejected."""
    started = (await session.execute(select(func.count()).select_from(MemberFlow)
                                     .where(col(MemberFlow.flow) == "koc_screening"))).scalar_one()
    statuses = dict((await session.execute(select(col(KocApplication.status), func.count())
                                           .group_by(col(KocApplication.status)))).all())
    by_type = dict((await session.execute(select(col(KocApplication.approved_type), func.count())
                                          .where(col(KocApplication.status) == "approved")
                                          .group_by(col(KocApplication.approved_type)))).all())
    return {"started": started, "applied": sum(statuses.values()), "pending": statuses.get("pending", 0),
            "approved": statuses.get("approved", 0), "rejected": statuses.get("rejected", 0), "by_type": by_type}


async def polls(session: AsyncSession, *, limit: int = 5) -> list[tuple[Poll, list[tuple[str, int]]]]:
    """The newest polls with each option's votes."""
    found = list((await session.execute(select(Poll).order_by(col(Poll.id).desc()).limit(limit))).scalars())
    out = []
    for poll in found:
        counts = dict((await session.execute(select(col(PollVote.option), func.count())
                                             .where(col(PollVote.poll_id) == poll.id)
                                             .group_by(col(PollVote.option)))).all())
        out.append((poll, [(o.get("name", "?"), counts.get(i, 0)) for i, o in enumerate(poll.options, start=1)]))
    return out
