"""When a scheduled message may go out: outside quiet hours, inside a playbook's window, and on
quota-limited channels at the day's digest time. Local times are in the community's zone."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.periods import parse_hhmm


def _inside(t: time, start: time, end: time) -> bool:
    """Whether ``t`` is in [start, end), a span that may wrap past midnight."""
    return start <= t < end if start < end else (t >= start or t < end)


def _next(local: datetime, at: time) -> datetime:
    """The first local moment at or after ``local`` whose clock reads ``at``."""
    candidate = local.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return candidate if candidate >= local else candidate + timedelta(days=1)


def allowed_at(when: datetime, zone: ZoneInfo, *, quiet: list[str], window: list[str]) -> datetime:
    """``when``, or the first moment after it outside ``quiet`` and inside ``window`` (each a
    pair of "HH:MM", or empty)."""
    local = when.astimezone(zone)
    for _ in range(3):  # a window and quiet hours settle within two moves
        moved = False
        if quiet and _inside(local.time(), parse_hhmm(quiet[0]), parse_hhmm(quiet[1])):
            local, moved = _next(local, parse_hhmm(quiet[1])), True
        if window and not _inside(local.time(), parse_hhmm(window[0]), parse_hhmm(window[1])):
            local, moved = _next(local, parse_hhmm(window[0])), True
        if not moved:
            break
    return local.astimezone(when.tzinfo)


def digest_time(when: datetime, zone: ZoneInfo, digest_at: str) -> datetime:
    """The digest that carries an item due at ``when``: that day's, if not yet past, else the next day's."""
    local = when.astimezone(zone)
    return _next(local, parse_hhmm(digest_at)).astimezone(when.tzinfo)


WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
