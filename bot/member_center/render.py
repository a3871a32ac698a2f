"""Member-center pages from the Jinja2 templates beside this module: small (no framework, no
CDN, one stylesheet), for a cheap phone in WeChat's in-app browser."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from itsdangerous import BadSignature
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bot.appkeys import CONFIG, DISPATCHER
from bot.member_center.auth import NOTICE_COOKIE, NOTICE_MAX, PATH, SIGNER, VISITOR

# The tab bar at the foot of every page: (route name, label). Features' pages join it in order.
TABS = (("m_home", "首页"), ("m_tasks", "任务"), ("m_mall", "商城"), ("m_ranks", "排行"), ("m_me", "我的"))

env = Environment(loader=PackageLoader("bot.member_center", "templates"),
                  autoescape=select_autoescape(default=True), undefined=StrictUndefined,
                  trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.do"],
                  auto_reload=False)  # templates ship with the code: no stat() of two files per page
env.filters["number"] = lambda value: "—" if value is None else f"{value:,}"


def local_time(request: web.Request, at: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    """A time as the member reads it: in the community's zone ([community] timezone)."""
    return "—" if at is None else at.astimezone(request.app[CONFIG].zone).strftime(fmt)


def page(request: web.Request, template: str, *, status: int = 200, **values: Any) -> web.Response:
    visitor = request.get(VISITOR)
    texts = request.app[DISPATCHER].texts
    routes = request.app.router
    html = env.get_template(template).render(
        request=request, visitor=visitor, csrf=visitor.csrf if visitor else "", url=routes,
        tabs=[(name, label) for name, label in TABS if name in routes], label=texts.label,
        at=lambda when, fmt="%m-%d %H:%M": local_time(request, when, fmt), **values)
    response = web.Response(text=html, content_type="text/html", status=status)
    if NOTICE_COOKIE in request.cookies:
        response.del_cookie(NOTICE_COOKIE, path=PATH)  # shown once
    # A member's own data: never cached by a proxy, never framed by another site.
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; "
                                                   "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; "
                                                   "form-action 'self'")
    return response


def notice_of(request: web.Request) -> str:
    """The line the last action left for this page (``actions.back``), if it is ours and fresh."""
    raw = request.cookies.get(NOTICE_COOKIE)
    if not raw:
        return ""
    try:
        notice = request.app[SIGNER].loads(raw, max_age=60)
    except BadSignature:
        return ""
    return notice[:NOTICE_MAX] if isinstance(notice, str) else ""
