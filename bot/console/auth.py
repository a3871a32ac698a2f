"""Signing in to the console: users and passwords from ``[console] users``, a signed session
cookie (no server-side session table: any process behind the load balancer reads it, given the
same ``[console] secret``), and a CSRF token in every form.

The CSRF token is a random value inside the signed cookie; a form posts it back and it must
match (a page on another site can make the browser send the cookie, but cannot read the
token). The sign-in form, before there is a session, does the same with a short-lived cookie.
"""
from __future__ import annotations

import functools
import hmac
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from bot.appkeys import CONFIG
from bot.console.config import CONSOLE, ConsoleConfig, ConsoleUser
from bot.roles import has_role

log = logging.getLogger("siyu.console")
SESSION_COOKIE, LOGIN_COOKIE = "siyu_console", "siyu_console_login"
LOGIN_MAX_AGE_S = 3600
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Session:
    user: ConsoleUser
    csrf: str

    @property
    def actor(self) -> str:
        """As the audit trail names the user."""
        return f"console:{self.user.name}"


SIGNER = web.AppKey("console_signer", URLSafeTimedSerializer)
SESSION = web.RequestKey("console_session", Session)


def signer_for(config: ConsoleConfig) -> URLSafeTimedSerializer:
    # No secret configured: a random one, so sessions end when this process does.
    return URLSafeTimedSerializer(config.secret or secrets.token_urlsafe(32), salt="siyu-console")


def _console(request: web.Request) -> ConsoleConfig:
    return request.app[CONFIG][CONSOLE]


def current(request: web.Request) -> Session | None:
    """The signed-in user of the request, if the cookie is valid, unexpired and names a user
    still in the config (removing a user from the config ends their sessions)."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    config = _console(request)
    try:
        data = request.app[SIGNER].loads(raw, max_age=config.session_hours * 3600)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not isinstance(data.get("c"), str):
        return None
    user = next((u for u in config.users if u.name == data["u"]), None)
    return Session(user, data["c"]) if user else None


def check_password(config: ConsoleConfig, name: str, password: str) -> ConsoleUser | None:
    """The user with this name and password; every user's password is compared in constant time."""
    found = None
    for user in config.users:
        if hmac.compare_digest(user.password.encode(), password.encode()) and user.name == name:
            found = user
    return found


def start_session(request: web.Request, response: web.StreamResponse, user: ConsoleUser) -> None:
    config = _console(request)
    token = request.app[SIGNER].dumps({"u": user.name, "c": secrets.token_urlsafe(24)})
    response.set_cookie(SESSION_COOKIE, token, max_age=config.session_hours * 3600, httponly=True,
                        samesite="Lax", secure=config.secure_cookie, path="/console")
    response.del_cookie(LOGIN_COOKIE, path="/console")


def end_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/console")


def remember_login_token(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Keep the sign-in form's CSRF ``token`` in a short-lived signed cookie."""
    response.set_cookie(LOGIN_COOKIE, request.app[SIGNER].dumps(token), max_age=LOGIN_MAX_AGE_S, httponly=True,
                        samesite="Lax", secure=_console(request).secure_cookie, path="/console")


def login_token_ok(request: web.Request, given: str) -> bool:
    raw = request.cookies.get(LOGIN_COOKIE, "")
    try:
        expected = request.app[SIGNER].loads(raw, max_age=LOGIN_MAX_AGE_S)
    except BadSignature:
        return False
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), given.encode())


class SignInThrottle:
    """At most ``limit`` failed sign-ins per address in ``window_s``: guessing passwords from
    one address stops there (one process's memory; each process counts its own)."""

    def __init__(self, limit: int = 10, window_s: float = 900.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(address, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def blocked(self, address: str, now: float) -> bool:
        blocked = len(self._recent(address, now)) >= self.limit
        if not self._failures.get(address):
            self._failures.pop(address, None)  # forget quiet addresses: the dict stays small
        return blocked

    def failed(self, address: str, now: float) -> None:
        self._recent(address, now).append(now)


THROTTLE = web.AppKey("console_throttle", SignInThrottle)


class CsrfRefused(web.HTTPForbidden):
    """A form without the session's token: another site's page, or one from before a sign-in."""


def require(role: str) -> Callable[[Handler], Handler]:
    """The page needs a signed-in user of ``role`` or above; a POST also needs the form's CSRF
    token. Not signed in: to the sign-in page, and back here after."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            session = current(request)
            if session is None:
                if request.method == "GET":
                    raise web.HTTPFound(request.app.router["console_login"].url_for().with_query(next=request.path_qs))
                raise web.HTTPUnauthorized(reason="请先登录")
            if request.method == "POST":
                form = await request.post()
                given = form.get("csrf")
                if not isinstance(given, str) or not hmac.compare_digest(given.encode(), session.csrf.encode()):
                    log.warning("console: %s %s by %s refused: missing or wrong CSRF token",
                                request.method, request.path, session.actor)
                    raise CsrfRefused(reason="表单已失效或来源不明（CSRF 校验失败），请刷新页面后重试")
            if not has_role(session.user.role, role):
                raise web.HTTPForbidden(reason=f"需要 {role} 角色，你的角色是 {session.user.role}")
            request[SESSION] = session
            return await handler(request)

        return checked

    return wrap
