"""The overview: the three layers of numbers the brand articles judge a community by (source,
process, result) for a date range, from the rollups."""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

import bot.console.rollups as rollups
from bot import periods
from bot.appkeys import CONFIG, DB, DISPATCHER
from bot.console.auth import SESSION, require
from bot.console.config import CONSOLE
from bot.console.params import query_date
from bot.console.render import page, today
from storage import audit, campaigns, dashboard
from storage import rollups as storage_rollups
from storage.dashboard import Series

MAX_DAYS = 366
TOP_CODES = 5
DELIVERY_LABELS = {"delivered": "已送达", "awaiting_owner": "待群主确认", "failed": "失败",
                   "expired": "群主未确认已过期", "skipped": "跳过", "planned": "待发送", "queued": "发送中",
                   "cancelled": "已取消"}


def date_range(request: web.Request, default_days: int) -> tuple[date, date]:
    """``from`` and ``to`` (YYYY-MM-DD) from the query, default the last ``default_days`` days."""
    last = query_date(request, "to") or today(request, request.app[DISPATCHER].clock.now())
    first = query_date(request, "from") or last - timedelta(days=default_days - 1)
    if first > last:
        raise web.HTTPBadRequest(reason="开始日期晚于结束日期")
    if (last - first).days >= MAX_DAYS:
        raise web.HTTPBadRequest(reason=f"日期范围最多 {MAX_DAYS} 天")
    return first, last


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _total(numbers: Series, metric: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for values in numbers.get(metric, {}).values():
        out.update(values)
    return out


def _line(numbers: Series, metric: str, days: list[date], dimension: str | None = None) -> list[float]:
    """A metric's values over the days (its dimensions summed, or one of them)."""
    by_day = numbers.get(metric, {})
    return [float(sum(by_day[d].values()) if dimension is None else by_day[d].get(dimension, 0))
            if d in by_day else 0.0 for d in days]


def build(numbers: Series, first: date, last: date) -> dict[str, Any]:
    """What the overview shows, computed from the rollup series."""
    days = _days(first, last)
    labels = [d.isoformat() for d in days]
    codes = _total(numbers, "new_by_code")
    top = [c for c, _ in codes.most_common(TOP_CODES)]
    members = _line(numbers, "members", days)
    checkins = _line(numbers, "checkins", days)
    latest = next((d for d in reversed(days) if d in numbers.get("members", {})), None)
    snap = next((d for d in reversed(days) if d in numbers.get("group_members", {})), None)
    group_members = numbers["group_members"][snap][""] if snap else 0
    speakers = numbers["group_speakers_7d"][snap].get("", 0) if snap else 0
    signin_rate = [c / m if m else None for c, m in zip(checkins, members, strict=True)]
    known_rates = [r for r in signin_rate if r is not None]
    return {
        "labels": labels,
        "kpi": {
            "members": sum(numbers["members"][latest].values()) if latest else 0,
            "new": sum(codes.values()), "lost": sum(_total(numbers, "lost").values()),
            "activity_rate": speakers / group_members if group_members else None, "speakers": speakers,
            "group_members": group_members,
            "signin_rate": sum(known_rates) / len(known_rates) if known_rates else None,
            "checkins": int(sum(checkins)), "task_checkins": sum(_total(numbers, "task_checkins").values()),
            "issued": sum(_total(numbers, "points_issued").values()),
            "spent": sum(_total(numbers, "points_spent").values()),
            "expired": sum(_total(numbers, "points_expired").values()),
            "redemptions": sum(_total(numbers, "redemptions").values()),
        },
        "new_by_code": [((c or "无渠道码"), _line(numbers, "new_by_code", days, c)) for c in top],
        "codes": [(c or "无渠道码", n) for c, n in codes.most_common()],
        "new_lost": [("新增", _line(numbers, "new_by_code", days)), ("流失", _line(numbers, "lost", days))],
        "by_channel": sorted(_total(numbers, "new_by_channel").items(), key=lambda kv: -kv[1]),
        "activity": [("活跃成员", _line(numbers, "active", days)), ("签到", checkins),
                     ("任务打卡", _line(numbers, "task_checkins", days))],
        "signin_rate": [("签到率", signin_rate)],
        "points": [("发放", _line(numbers, "points_issued", days)), ("消耗", _line(numbers, "points_spent", days)),
                   ("过期", _line(numbers, "points_expired", days))],
        "redemptions": sorted(_total(numbers, "redemptions").items(), key=lambda kv: -kv[1]),
        "deliveries": [(DELIVERY_LABELS.get(s, s), n) for s, n in _total(numbers, "deliveries").most_common()],
        "delivery_counts": _total(numbers, "deliveries"),
    }


@require("viewer")
async def overview(request: web.Request) -> web.Response:
    config = request.app[CONFIG][CONSOLE]
    first, last = date_range(request, config.default_days)
    async with request.app[DB].read() as session:
        numbers = await dashboard.series(session, first, last)
        snapshot = await dashboard.latest_snapshot(session, last)
        groups = (await dashboard.group_counts(session, snapshot, size_limit=config.group_size_limit) if snapshot
                  else None)
        by_cohort, by_code = await dashboard.retention(session, first, last)
        funnel = await dashboard.koc_funnel(session)
        polls = await dashboard.polls(session)
        rolled_up = await storage_rollups.rolled_up_at(session)
        zone = request.app[CONFIG].zone
        visits = await campaigns.figures(session, first, last, periods.day_span(first, zone)[0],
                                         periods.day_span(last, zone)[1])
        by_campaign = await campaigns.by_campaign(session, first, last)
    return page(request, "overview.html", first=first, last=last, view=build(numbers, first, last), groups=groups,
                member_center=member_center(visits), by_campaign=[(source_label(r.source), r) for r in by_campaign],
                snapshot=snapshot, by_cohort=by_cohort, by_code=by_code, funnel=funnel, polls=polls,
                size_limit=config.group_size_limit, rolled_up=freshness(request, rolled_up),
                every_min=max(1, round(config.rollup_every_s / 60)))


def member_center(f: campaigns.Figures) -> dict[str, int]:
    """The member center's figures: visits through links, members who came, and sign-ins and
    redemptions by surface (those before surfaces were recorded, 0021, came from chat)."""
    def chat(by: dict[str, int]) -> int:
        return by.get(campaigns.CHAT, 0) + by.get("", 0)

    return {"visits": f.visits, "members": f.members, "signins_chat": chat(f.signins),
            "signins_page": f.signins.get(campaigns.PAGE, 0), "redemptions_chat": chat(f.redemptions),
            "redemptions_page": f.redemptions.get(campaigns.PAGE, 0)}


def source_label(source: str) -> str:
    """A campaign's source as operators name it: SOP「早安」, 群发 #12, 欢迎语, the chat keyword."""
    kind, _, name = source.partition(":")
    return {"sop": f"SOP「{name}」", "broadcast": f"群发 #{name}", "welcome": "欢迎语",
            "chat": f"聊天里发「会员中心」（{name}）"}.get(kind, source)


def freshness(request: web.Request, at: datetime | None) -> str | None:
    """When the rolled-up numbers were computed, as operators read it: HH:MM today, else with
    the date (None: never)."""
    if at is None:
        return None
    zone = request.app[CONFIG].zone
    local, now = at.astimezone(zone), request.app[DISPATCHER].clock.now().astimezone(zone)
    return local.strftime("%H:%M" if local.date() == now.date() else "%m-%d %H:%M")


@require("operator")
async def refresh(request: web.Request) -> web.StreamResponse:
    """Roll up now instead of at the job's next run (after a data import, say)."""
    d = request.app[DISPATCHER]
    days = await rollups.refresh(request.app[DB], d.config, d.texts, d.clock.now())
    async with request.app[DB].transaction() as session:
        await audit.record(session, actor=request[SESSION].actor, action="console.refresh", result="ok",
                           now=d.clock.now(), args={"days": days})
    return web.Response(status=303, headers={"Location": str(request.app.router["console_overview"].url_for())})
