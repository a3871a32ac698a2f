"""Pages from the Jinja2 templates beside this module, with what every page shows: the user,
the navigation, the CSRF token for its forms."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bot.appkeys import CONFIG, DISPATCHER
from bot.console.auth import SESSION
from bot.console.charts import bar_chart, line_chart, sparkline

NAV = (("console_overview", "概览"), ("console_groups", "群"), ("console_members", "成员"), ("console_koc", "KOC 审核"),
       ("console_tasks", "打卡审核"), ("console_rewards", "兑换"), ("console_broadcasts", "群发"),
       ("console_audit", "审计日志"))

env = Environment(loader=PackageLoader("bot.console", "templates"), autoescape=select_autoescape(default=True),
                  undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
env.globals.update(line_chart=line_chart, bar_chart=bar_chart, sparkline=sparkline, NAV=NAV)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _number(value: int | float | None) -> str:
    return "—" if value is None else f"{value:,}"


env.filters.update(percent=_percent, number=_number)


def local_time(request: web.Request, at: datetime | None) -> str:
    """A time as operators read it: in the community's zone ([community] timezone)."""
    if at is None:
        return "—"
    return at.astimezone(request.app[CONFIG].zone).strftime("%Y-%m-%d %H:%M")


def today(request: web.Request, now: datetime) -> date:
    return now.astimezone(request.app[CONFIG].zone).date()


def page(request: web.Request, template: str, *, status: int = 200, **values: Any) -> web.Response:
    session = request.get(SESSION)
    texts = request.app[DISPATCHER].texts
    # label(prefix, value): a stored state, kind or key in the operators' words (the texts).
    html = env.get_template(template).render(
        request=request, session=session, csrf=session.csrf if session else "", url=request.app.router,
        at=lambda when: local_time(request, when), label=texts.label, **values)
    response = web.Response(text=html, content_type="text/html", status=status)
    # Pages show members' data: never cached, never framed by another site.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = ("default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                                   "frame-ancestors 'none'")
    return response
