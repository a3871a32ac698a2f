"""The console's reading pages: groups (sortable, with a trend, and each group's history),
members (search, profile with ledger and flows), broadcasts in progress, the audit log."""
from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy import or_, select
from sqlmodel import col

from bot.appkeys import CONFIG, DB, DISPATCHER
from bot.console.auth import require
from bot.console.config import CONSOLE
from bot.console.params import path_id, query_int
from bot.console.render import page, today
from flows.engine import describe
from handlers.broadcasts import services as broadcast_services
from handlers.operators.services import profile
from storage import audit, dashboard, flows, points
from storage.models import (
    Group,
    GroupMembership,
    KocApplication,
    Member,
    MemberTag,
    PointEntry,
    Redemption,
    Reward,
)

PAGE_SIZE = 50
SPARK_DAYS = 14


def _search(request: web.Request) -> str:
    q = request.query.get("q", "").strip()
    if len(q) > 64 or any(ord(c) < 32 for c in q):
        raise web.HTTPBadRequest(reason="搜索词最多 64 个字符")
    return q


@require("viewer")
async def groups(request: web.Request) -> web.Response:
    sort = request.query.get("sort", "rate")
    if sort not in dashboard.GROUP_SORTS:
        raise web.HTTPBadRequest(reason=f"排序字段应为 {', '.join(dashboard.GROUP_SORTS)} 之一")
    descending = request.query.get("desc", "0") == "1"
    number, q = query_int(request, "page", 1), _search(request)
    last = today(request, request.app[DISPATCHER].clock.now())
    async with request.app[DB].read() as session:
        snapshot = await dashboard.latest_snapshot(session, last)
        rows, total = (await dashboard.groups(session, snapshot, sort=sort, descending=descending, search=q or None,
                                              limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
                       if snapshot else ([], 0))
        trend = await dashboard.daily_messages(session, [g.id for g in rows],
                                               last - timedelta(days=SPARK_DAYS - 1), last)
    return page(request, "groups.html", rows=rows, total=total, trend=trend, sort=sort, descending=descending,
                number=number, pages=max(1, -(-total // PAGE_SIZE)), q=q, snapshot=snapshot,
                size_limit=request.app[CONFIG][CONSOLE].group_size_limit)


@require("viewer")
async def group(request: web.Request) -> web.Response:
    group_id = path_id(request, "group")
    last = today(request, request.app[DISPATCHER].clock.now())
    first = last - timedelta(days=request.app[CONFIG][CONSOLE].default_days - 1)
    async with request.app[DB].read() as session:
        found = await session.get(Group, group_id)
        if found is None:
            raise web.HTTPNotFound(reason="没有这个群")
        history = await dashboard.group_history(session, group_id, first, last)
        messages = (await dashboard.daily_messages(session, [group_id], first, last))[group_id]
        talkers = (await session.execute(
            select(Member, GroupMembership)
            .join(GroupMembership, col(GroupMembership.member_id) == col(Member.id))
            .where(col(GroupMembership.group_id) == group_id, col(GroupMembership.left_at).is_(None))
            .order_by(col(GroupMembership.message_count).desc())
            .limit(PAGE_SIZE))).all()
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    by_day = {h.day.isoformat(): h for h in history}
    return page(request, "group.html", group=found, talkers=talkers, days=days, messages=messages,
                members=[float(by_day[d].members) if d in by_day else None for d in days],
                rates=[by_day[d].active_7d / by_day[d].members if d in by_day and by_day[d].members else None
                       for d in days])


@require("viewer")
async def members(request: web.Request) -> web.Response:
    q = _search(request)
    async with request.app[DB].read() as session:
        query = select(Member).order_by(col(Member.id).desc()).limit(PAGE_SIZE)
        if q:
            query = query.where(or_(col(Member.external_id) == q, col(Member.name).like(f"{q}%")))
        found = list((await session.execute(query)).scalars())
    return page(request, "members.html", rows=found, q=q)


@require("viewer")
async def member(request: web.Request) -> web.Response:
    member_id = path_id(request, "member")
    async with request.app[DB].read() as session:
        found = await session.get(Member, member_id)
        if found is None:
            raise web.HTTPNotFound(reason="没有这个成员")
        balance, pending, lifetime = (await points.balance(session, member_id),
                                      await points.pending(session, member_id),
                                      await points.lifetime(session, member_id))
        ledger = list((await session.execute(select(PointEntry)
                                             .where(col(PointEntry.member_id) == member_id)
                                             .order_by(col(PointEntry.id).desc())
                                             .limit(PAGE_SIZE))).scalars())
        tags = list((await session.execute(select(col(MemberTag.tag))
                                           .where(col(MemberTag.member_id) == member_id))).scalars())
        member_flows = await flows.of_member(session, member_id)
        applications = list((await session.execute(select(KocApplication)
                                                   .where(col(KocApplication.member_id) == member_id)
                                                   .order_by(col(KocApplication.id).desc()))).scalars())
        in_groups = (await session.execute(select(Group, GroupMembership)
                                           .join(GroupMembership, col(GroupMembership.group_id) == col(Group.id))
                                           .where(col(GroupMembership.member_id) == member_id)
                                           .limit(PAGE_SIZE))).all()
        redeemed = (await session.execute(select(Redemption, Reward)
                                          .join(Reward, col(Reward.id) == col(Redemption.reward_id))
                                          .where(col(Redemption.member_id) == member_id)
                                          .order_by(col(Redemption.id).desc())
                                          .limit(PAGE_SIZE))).all()
    d = request.app[DISPATCHER]
    defined = d.flows.flows if d.flows is not None else {}
    return page(request, "member.html", member=found, balance=balance, pending=pending, lifetime=lifetime,
                ledger=ledger, tags=tags, applications=applications, groups=in_groups, redeemed=redeemed,
                flows=[(f, *describe(defined, d.texts, f.flow, f.state, f.active)) for f in member_flows],
                profile=profile(d.config, d.texts, found.attributes))


@require("viewer")
async def broadcasts(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        d = request.app[DISPATCHER]
        rows = await broadcast_services.summaries(session, d.texts, limit=PAGE_SIZE, now=d.clock.now())
    return page(request, "broadcasts.html", rows=rows)


@require("admin")
async def audit_log(request: web.Request) -> web.Response:
    number = query_int(request, "page", 1)
    async with request.app[DB].read() as session:
        entries = await audit.latest(session, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
    return page(request, "audit.html", entries=entries, number=number, more=len(entries) == PAGE_SIZE)


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/console/groups", groups, name="console_groups")
    r.add_get("/console/groups/{group}", group, name="console_group")
    r.add_get("/console/members", members, name="console_members")
    r.add_get("/console/members/{member}", member, name="console_member")
    r.add_get("/console/broadcasts", broadcasts, name="console_broadcasts")
    r.add_get("/console/audit", audit_log, name="console_audit")
