"""Who is on the member center: a server-side session (``member_sessions``) named by a signed
cookie, a CSRF token in every form, and per-member and per-address limits.

The cookie names the session only; the member comes from the database on every page, so a
member the brand deleted, or a session ended in any process, shows nothing. Nothing in a URL
names a member: every page shows the signed-in member's own data.
"""
from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import overload
from urllib.parse import urlsplit

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from bot import periods
from bot.appkeys import CONFIG, DB, DISPATCHER
from bot.http import client_address
from bot.member_center.config import MEMBER_CENTER, MemberCenterConfig
from bot.member_center.limits import Window
from storage import member_sessions
from storage.member_sessions import Standing
from storage.models import Member

log = logging.getLogger("siyu.member_center")
COOKIE, NOTICE_COOKIE, PATH = "siyu_m", "siyu_m_notice", "/m"
NOTICE_MAX = 500
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Visitor:
    """The signed-in member of a request."""

    member: Member
    csrf: str
    sid: str
    # The member's points and streak, read with the session by pages that show them
    # (``@member_only(standing=True)``): no second read for them.
    standing: Standing | None = None

    @property
    def member_id(self) -> int:
        assert self.member.id is not None
        return self.member.id


SIGNER = web.AppKey("member_center_signer", URLSafeTimedSerializer)
# Session cookies whose signature held: cookie -> (session id, CSRF token, the time.time() its
# max age ends). A member's next pages skip the HMAC, its key derivation and the decoding
# (a tenth of a home page's CPU); the session itself is still read on every page.
CHECKED = web.AppKey("member_center_checked_cookies", dict[str, tuple[str, str, float]])
CHECKED_MAX = 10_000  # then forgotten all at once: a dict, no LRU bookkeeping per page
ACTIONS = web.AppKey("member_center_actions", Window)  # per member
PAGES = web.AppKey("member_center_pages", Window)  # per address
# How a browser without a session signs in (WeCom's web authorization, or a page saying how).
SIGN_IN: web.AppKey[Handler] = web.AppKey("member_center_sign_in")
VISITOR = web.RequestKey("member_center_visitor", Visitor)


def settings(request: web.Request) -> MemberCenterConfig:
    return request.app[CONFIG][MEMBER_CENTER]


def now_of(request: web.Request) -> datetime:
    return request.app[DISPATCHER].clock.now()  # the app's clock: tests move it


def address_of(request: web.Request) -> str:
    return client_address(request, request.app[CONFIG].server.proxy_networks)


def secure(request: web.Request) -> bool:
    """Cookies only over HTTPS when the member center is served over HTTPS (``[server] public_url``)."""
    return request.app[CONFIG].server.public_url.startswith("https://")


def install(app: web.Application, config: MemberCenterConfig) -> None:
    # No secret configured: a random one, so members sign in again after a restart.
    app[SIGNER] = URLSafeTimedSerializer(config.secret or secrets.token_urlsafe(32), salt="siyu-member-center")
    app[CHECKED] = {}
    app[ACTIONS] = Window(config.actions_per_min, 60.0)
    app[PAGES] = Window(config.pages_per_min_per_address, 60.0)


async def current(request: web.Request, *, standing: bool = False) -> Visitor | None:
    """The signed-in member (one read by primary key), with their ``Standing`` if asked."""
    cookie = _checked_cookie(request)
    if cookie is None:
        return None
    sid, csrf = cookie
    now = now_of(request)
    async with request.app[DB].read_one() as s:
        if not standing:
            member = await member_sessions.member_of(s, sid, now=now)
            return Visitor(member, csrf, sid) if member is not None else None
        found = await member_sessions.member_and_standing(
            s, sid, now=now, day=periods.local_day(now, request.app[CONFIG].zone))
    return Visitor(found[0], csrf, sid, found[1]) if found is not None else None


def _checked_cookie(request: web.Request) -> tuple[str, str] | None:
    """The session id and CSRF token the session cookie carries, if its signature holds and it
    is younger than ``session_days``."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    checked = request.app[CHECKED]
    known = checked.get(raw)
    if known is not None and known[2] > time.time():  # itsdangerous' own clock for max_age
        return known[0], known[1]
    max_age = settings(request).session_days * 86400
    try:
        data, signed_at = request.app[SIGNER].loads(raw, max_age=max_age, return_timestamp=True)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("s", "c")):
        return None
    if len(checked) >= CHECKED_MAX:
        checked.clear()
    checked[raw] = (data["s"], data["c"], signed_at.timestamp() + max_age)
    return data["s"], data["c"]


async def start_session(request: web.Request, response: web.StreamResponse, member_id: int) -> None:
    """Sign the browser in as the member: a new session, a fresh CSRF token."""
    days = settings(request).session_days
    async with request.app[DB].transaction() as s:
        sid = await member_sessions.open_session(s, member_id, now=now_of(request), lifetime=timedelta(days=days))
    token = request.app[SIGNER].dumps({"s": sid, "c": secrets.token_urlsafe(24)})
    response.set_cookie(COOKIE, token, max_age=days * 86400, httponly=True, samesite="Lax", secure=secure(request),
                        path=PATH)


async def end_session(request: web.Request, response: web.StreamResponse, visitor: Visitor) -> None:
    async with request.app[DB].transaction() as s:
        await member_sessions.revoke(s, visitor.sid, now=now_of(request))
    response.del_cookie(COOKIE, path=PATH)


def safe_next(target: str) -> str:
    """Back to a member-center page after signing in, never to another site (an open redirect)."""
    parts = urlsplit(target)
    ok = not parts.scheme and not parts.netloc and target.startswith("/m/") and "\\" not in target
    return target if ok and not target.startswith("//") else "/m/"


class CsrfRefused(web.HTTPForbidden):
    """A form without the session's token: another site's page, or an old one."""


@overload
def member_only(handler: Handler, /) -> Handler: ...
@overload
def member_only(*, standing: bool = False) -> Callable[[Handler], Handler]: ...


def member_only(handler: Handler | None = None, /, *,
                standing: bool = False) -> Handler | Callable[[Handler], Handler]:
    """The page needs a signed-in member; a POST also needs the form's CSRF token and stays
    within the member's actions a minute. Not signed in: a GET signs in (and comes back).
    ``@member_only(standing=True)``: ``request[VISITOR].standing`` is read with the session."""
    if handler is None:
        return functools.partial(_member_only, standing=standing)
    return _member_only(handler, standing=standing)


def _member_only(handler: Handler, *, standing: bool) -> Handler:
    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        visitor = await current(request, standing=standing)
        if visitor is None:
            if request.method == "GET":
                return await request.app[SIGN_IN](request)
            raise web.HTTPUnauthorized(reason="登录已过期，请从群里的链接重新打开会员中心")
        if request.method == "POST":
            form = await request.post()
            given = form.get("csrf")
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), visitor.csrf.encode()):
                log.warning("member center: %s %s by member %d refused: missing or wrong CSRF token",
                            request.method, request.path, visitor.member_id)
                raise CsrfRefused(reason="页面已过期，请刷新后再试")
            if not request.app[ACTIONS].allow(visitor.member_id, now_of(request).timestamp()):
                log.warning("member center: member %d over %d actions a minute", visitor.member_id,
                            settings(request).actions_per_min)
                raise web.HTTPTooManyRequests(reason="操作太频繁了，请稍等一分钟再试")
        request[VISITOR] = visitor
        return await handler(request)

    return checked
