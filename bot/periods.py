"""The community's calendar: local days, weeks (from Monday) and months as instants, and local
times of day ("HH:MM"). Caps, sign-ins, leaderboards, quiet hours and the console's days count
by these, in the community's zone (``config.zone``, ``ctx.zone``)."""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Period = tuple[datetime, datetime]  # [start, end)
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def hours_pair(value: list[str], name: str) -> list[str]:
    """A validator: two different local times ("HH:MM"), or none."""
    if value and (len(value) != 2 or not all(HHMM.match(v) for v in value) or value[0] == value[1]):
        raise ValueError(f'{name} is two different local times "HH:MM", e.g. ["22:00", "08:00"], or []')
    return value


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def local_day(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()


def day_of(now: datetime, zone: ZoneInfo) -> Period:
    start = _midnight(now.astimezone(zone).date(), zone)
    return start, _midnight(start.date() + timedelta(days=1), zone)


def day_span(day: date, zone: ZoneInfo) -> Period:
    """The instants of the local ``day``."""
    return _midnight(day, zone), _midnight(day + timedelta(days=1), zone)


def week_of(now: datetime, zone: ZoneInfo) -> Period:
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday())
    return _midnight(monday, zone), _midnight(monday + timedelta(days=7), zone)


def month_of(now: datetime, zone: ZoneInfo) -> Period:
    first = now.astimezone(zone).date().replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return _midnight(first, zone), _midnight(following, zone)


BOUNDS = {"day": day_of, "week": week_of, "month": month_of}


def current(period: str, now: datetime, zone: ZoneInfo) -> Period:
    """The ``period`` (day, week or month) that holds ``now``."""
    return BOUNDS[period](now, zone)


def previous(period: str, now: datetime, zone: ZoneInfo) -> Period:
    """The ``period`` that ended last before ``now``."""
    start, _ = current(period, now, zone)
    return current(period, start - timedelta(seconds=1), zone)
