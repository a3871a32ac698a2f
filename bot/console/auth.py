"""Signing in to the console: users and passwords from ``[console] users``, a server-side
session (``console_sessions``) named by a signed cookie, and a CSRF token in every form.

Every request reads its session by primary key: signing out, or a user removed from the config,
ends it in every process sharing the database. The cookie also carries a keyed digest of the
user's role and password, so changing either in the config signs the user out as well.

The CSRF token is a random value inside the signed cookie; a form posts it back and it must
match (a page on another site can make the browser send the cookie, but cannot read the
token). The sign-in form, before there is a session, does the same with a short-lived cookie.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from bot.appkeys import CONFIG, DB, DISPATCHER
from bot.config import Config
from bot.console.config import CONSOLE, ConsoleConfig, ConsoleUser
from bot.http import client_address
from bot.jobs import Job
from bot.roles import has_role
from bot.texts import Texts
from storage import sessions
from storage.engine import Database

log = logging.getLogger("siyu.console")
SESSION_COOKIE, LOGIN_COOKIE = "siyu_console", "siyu_console_login"
LOGIN_MAX_AGE_S = 3600
SESSIONS_CLEANUP_S = 3600.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Session:
    user: ConsoleUser
    csrf: str
    id: str  # the row in console_sessions

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


def _now(request: web.Request) -> datetime:
    return request.app[DISPATCHER].clock.now()


def remote_address(request: web.Request) -> str:
    """The client's address, as the sign-in throttle and the log know it (behind a proxy of
    ``[server] trusted_proxies``: from its ``X-Forwarded-For``)."""
    return client_address(request, request.app[CONFIG].server.proxy_networks)


def _grant(request: web.Request, user: ConsoleUser) -> str:
    """A digest of what the user may do, as the config says now; keyed, so the cookie (readable
    by whoever holds it) tells nothing about the password."""
    material = f"{user.name}\0{user.role}\0{user.password}".encode()
    return hmac.new(request.app[SIGNER].secret_key, material, hashlib.sha256).hexdigest()[:32]


async def current(request: web.Request) -> Session | None:
    """The signed-in user of the request: a valid cookie naming an open session whose user is
    still in the config with the same role and password. A removed user's sessions are revoked
    (all of them, for every process); one whose role or password changed loses this one."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    config = _console(request)
    try:
        data = request.app[SIGNER].loads(raw, max_age=config.session_hours * 3600)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("s", "g", "c")):
        return None  # not ours, or from before sessions were kept server-side
    sid, now = data["s"], _now(request)
    async with request.app[DB].read() as s:
        name = await sessions.user_of(s, sid, now=now)
    if name is None:
        return None
    user = next((u for u in config.users if u.name == name), None)
    if user is not None and hmac.compare_digest(_grant(request, user).encode(), data["g"].encode()):
        return Session(user, data["c"], sid)
    async with request.app[DB].transaction() as s:
        if user is None:
            ended = await sessions.revoke_user(s, name, now=now)
            log.warning("console: %s is no longer a console user: %d session(s) ended", name, ended)
        else:
            await sessions.revoke(s, sid, now=now)
            log.warning("console: %s's role or password changed: session ended", name)
    return None


def check_password(config: ConsoleConfig, name: str, password: str) -> ConsoleUser | None:
    """The user with this name and password; every user's password is compared in constant time."""
    found = None
    for user in config.users:
        if hmac.compare_digest(user.password.encode(), password.encode()) and user.name == name:
            found = user
    return found


async def start_session(request: web.Request, response: web.StreamResponse, user: ConsoleUser) -> None:
    config = _console(request)
    async with request.app[DB].transaction() as s:
        sid = await sessions.open_session(s, user.name, now=_now(request),
                                          lifetime=timedelta(hours=config.session_hours))
    token = request.app[SIGNER].dumps({"s": sid, "g": _grant(request, user), "c": secrets.token_urlsafe(24)})
    response.set_cookie(SESSION_COOKIE, token, max_age=config.session_hours * 3600, httponly=True,
                        samesite="Lax", secure=config.secure_cookie, path="/console")
    response.del_cookie(LOGIN_COOKIE, path="/console")


async def end_session(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    """Sign out: the session is revoked in the database, so the cookie, if kept or copied, is
    refused by every process."""
    async with request.app[DB].transaction() as s:
        await sessions.revoke(s, session.id, now=_now(request))
    response.del_cookie(SESSION_COOKIE, path="/console")


async def delete_ended_sessions(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """The job that deletes expired and revoked sessions (they refuse their cookie already)."""
    async with db.transaction() as s:
        return await sessions.delete_ended(s, now=now)


def jobs(config: Config) -> list[Job]:
    return [Job("console_sessions_cleanup", delete_ended_sessions, every_s=SESSIONS_CLEANUP_S)]


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
    one address stops there (one process's memory; each process counts its own). Times are
    seconds of the app's clock. An address whose failures are all older than the window is
    forgotten, so the table holds only the addresses that failed within the last window."""

    def __init__(self, limit: int = 10, window_s: float = 900.0) -> None:
        self.limit, self.window_s = limit, window_s
        # By last failure, oldest first: the stale ones are at the front.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        """How many addresses are remembered."""
        return len(self._failures)

    def _forget(self, now: float) -> None:
        while self._failures:
            address, failures = next(iter(self._failures.items()))
            if failures[-1] > now - self.window_s:
                break
            del self._failures[address]

    def blocked(self, address: str, now: float) -> bool:
        self._forget(now)
        return sum(1 for t in self._failures.get(address, ()) if t > now - self.window_s) >= self.limit

    def failed(self, address: str, now: float) -> None:
        self._forget(now)
        # Only the last ``limit`` failures decide whether the address is blocked.
        failures = self._failures.pop(address, None) or deque(maxlen=self.limit)
        failures.append(now)
        self._failures[address] = failures


THROTTLE = web.AppKey("console_throttle", SignInThrottle)


class CsrfRefused(web.HTTPForbidden):
    """A form without the session's token: another site's page, or one from before a sign-in."""


def require(role: str) -> Callable[[Handler], Handler]:
    """The page needs a signed-in user of ``role`` or above; a POST also needs the form's CSRF
    token. Not signed in: to the sign-in page, and back here after."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            session = await current(request)
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
