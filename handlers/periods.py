"""Local days, weeks (from Monday) and months as instants: what caps, sign-ins and
leaderboards count by, in ``[checkin] timezone``."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Period = tuple[datetime, datetime]  # [start, end)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def local_day(now: datetime, zone: str) -> date:
    return now.astimezone(ZoneInfo(zone)).date()


def day_of(now: datetime, zone: str) -> Period:
    tz = ZoneInfo(zone)
    start = _midnight(now.astimezone(tz).date(), tz)
    return start, _midnight(start.date() + timedelta(days=1), tz)


def week_of(now: datetime, zone: str) -> Period:
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    return _midnight(monday, tz), _midnight(monday + timedelta(days=7), tz)


def month_of(now: datetime, zone: str) -> Period:
    tz = ZoneInfo(zone)
    first = now.astimezone(tz).date().replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return _midnight(first, tz), _midnight(following, tz)


BOUNDS = {"day": day_of, "week": week_of, "month": month_of}


def current(period: str, now: datetime, zone: str) -> Period:
    """The ``period`` (day, week or month) that holds ``now``."""
    return BOUNDS[period](now, zone)


def previous(period: str, now: datetime, zone: str) -> Period:
    """The ``period`` that ended last before ``now``."""
    start, _ = current(period, now, zone)
    return current(period, start - timedelta(seconds=1), zone)
