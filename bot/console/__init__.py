"""The operators' console under /console: the community's numbers (source, process, result),
groups, members, the KOC review queue, rewards and redemptions, broadcasts and the audit log,
as server-rendered pages that work without internet access.

Signing in needs a user from ``[console] users``; viewers read, operators act (the same rules
and audit entries as the chat commands), admins also read the audit log. Every form carries a
CSRF token.
"""
from __future__ import annotations

import logging
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from bot.appkeys import CONFIG, DISPATCHER
from bot.config import Config
from bot.console import actions, auth, overview, pages, params, reward_details, rollups
from bot.console.config import CONSOLE
from bot.console.render import page
from bot.feature import Feature
from bot.http import busy
from bot.jobs import Job
from storage.engine import is_transient

log = logging.getLogger("siyu.console")
STATIC_FILES = {path.name: path for path in Path(__file__).with_name("static").iterdir() if path.is_file()}


def _safe_next(target: str) -> str:
    """Back to a console page after signing in, never to another site."""
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc and target.startswith("/console") else "/console"


def _login_form(request: web.Request, *, target: str, error: str | None = None, status: int = 200) -> web.Response:
    """The sign-in page with a fresh CSRF token (its cookie set on the same response)."""
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", status=status, error=error, next=target, csrf_login=token,
                    no_users=not request.app[CONFIG][CONSOLE].users)
    auth.remember_login_token(request, response, token)
    return response


async def login_page(request: web.Request) -> web.Response:
    if await auth.current(request) is not None:
        raise web.HTTPFound(_safe_next(request.query.get("next", "/console")))
    return _login_form(request, target=_safe_next(request.query.get("next", "/console")))


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name, password, given = (str(form.get(k, "")) for k in ("name", "password", "csrf"))
    target = _safe_next(str(form.get("next", "/console")))
    if not auth.login_token_ok(request, given):
        raise auth.CsrfRefused(reason="登录表单已失效（CSRF 校验失败），请刷新页面后重试")
    throttle, address = request.app[auth.THROTTLE], auth.remote_address(request)
    now = request.app[DISPATCHER].clock.now().timestamp()  # the app's clock: tests move it
    if throttle.blocked(address, now):
        log.warning("console: sign-in from %s refused: too many failed attempts", address)
        return _login_form(request, target=target, error="登录失败次数过多，请 15 分钟后再试", status=429)
    user = auth.check_password(request.app[CONFIG][CONSOLE], name, password)
    if user is None:
        throttle.failed(address, now)
        log.warning("console: sign-in refused for %r from %s", name[:64], address)
        return _login_form(request, target=target, error="用户名或密码不对", status=401)
    log.info("console: %s signed in from %s", user.name, address)
    response = web.Response(status=302, headers={"Location": target})
    await auth.start_session(request, response, user)
    return response


@auth.require("viewer")
async def logout(request: web.Request) -> web.StreamResponse:
    response = web.Response(status=302, headers={"Location": str(request.app.router["console_login"].url_for())})
    await auth.end_session(request, response, request[auth.SESSION])
    return response


@web.middleware
async def console_errors(request: web.Request, handler: auth.Handler) -> web.StreamResponse:
    """Under /console: an error is a page that says what went wrong, in Chinese, never a trace."""
    if not request.path.startswith("/console"):
        return await handler(request)
    try:
        if request.method == "POST" and request.match_info.route.name in params.FILE_ROUTES:
            request = reward_details.sized(request)
        await params.check(request)
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return page(request, "error.html", status=exc.status, message=exc.reason or "出错了")
    except Exception as exc:
        if is_transient(exc):
            log.warning("database busy on %s %s (%s): answered 503", request.method, request.path, type(exc).__name__)
            return busy(page(request, "error.html", status=503, message="数据库正忙，请稍后刷新重试"))
        log.exception("console error on %s %s", request.method, request.path)
        return page(request, "error.html", status=500, message="服务器出错了，运维可在日志中找到原因")


async def static_file(request: web.Request) -> web.StreamResponse:
    """A file shipped beside the console, looked up by name: nothing a caller sends reaches the
    file system (a 5,000-character name is simply not one of them)."""
    found = STATIC_FILES.get(request.match_info["filename"])
    if found is None:
        raise web.HTTPNotFound(reason="没有这个文件")
    return web.FileResponse(found)


def add_routes(app: web.Application) -> None:
    app[auth.SIGNER] = auth.signer_for(app[CONFIG][CONSOLE])
    app[auth.THROTTLE] = auth.SignInThrottle()
    app.middlewares.append(console_errors)
    r = app.router
    r.add_get("/console/login", login_page, name="console_login")
    r.add_post("/console/login", login)
    r.add_post("/console/logout", logout, name="console_logout")
    r.add_get("/console/static/{filename}", static_file, name="console_static")
    r.add_get("/console", overview.overview, name="console_overview")
    r.add_post("/console/refresh", overview.refresh, name="console_refresh")
    pages.add_routes(r)
    actions.add_routes(r)
    reward_details.add_routes(r)


def _web(app: web.Application) -> None:
    if app[CONFIG][CONSOLE].enabled:
        add_routes(app)


def _jobs(config: Config) -> list[Job]:
    return [*rollups.jobs(config), *auth.jobs(config)]


# The console is a web surface registered like a feature: its section, its jobs (the rollups,
# deleting ended sessions), its pages.
feature = Feature("console", settings=(CONSOLE,), texts=Feature.texts_beside(__file__), jobs=_jobs, web=_web)
