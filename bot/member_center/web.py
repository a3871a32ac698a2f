"""The member center's routes under /m/, its error pages, the per-address limit, and signing in
without WeCom: the sandbox's members on this machine (``/m/?as=u1``)."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from aiohttp import web

import bot.member_center.auth as auth
import bot.member_center.koc_form as koc_form
import bot.member_center.ledger as ledger
import bot.member_center.links as links
import bot.member_center.mall as mall
import bot.member_center.me as me
import bot.member_center.pages as pages
import bot.member_center.params as params
import bot.member_center.ranks as ranks
import bot.member_center.tasks as tasks
import bot.member_center.votes as votes
from bot.appkeys import CHANNELS, DB
from bot.http import busy
from bot.member_center.render import page
from storage import community
from storage.community import Sighting
from storage.engine import is_transient

log = logging.getLogger("siyu.member_center")
STATIC_FILES = {path.name: path for path in Path(__file__).with_name("static").iterdir() if path.is_file()}
SANDBOX = "sandbox"
SANDBOX_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def _local(request: web.Request) -> bool:
    """A client on this machine, nothing forwarded for someone else (as the sandbox requires)."""
    remote = request.remote or ""
    return remote in ("127.0.0.1", "::1") and not any(h in request.headers for h in FORWARDING_HEADERS)


def message(request: web.Request, title: str, *lines: str, status: int = 200, **extra: str) -> web.Response:
    return page(request, "message.html", status=status, title=title, lines=lines, notice="",
                picture=extra.get("picture", ""), link=extra.get("link", ""), link_text=extra.get("link_text", ""))


async def sign_in_unavailable(request: web.Request) -> web.StreamResponse:
    """Without WeCom's web authorization a browser cannot say who it is: the page says where
    the member center opens (the sandbox offers its members on this machine)."""
    if SANDBOX in request.app[CHANNELS] and _local(request):
        return await sandbox_sign_in(request)
    return message(request, "请从企业微信或微信中打开", "会员中心需要在企业微信或微信里打开，才能知道你是谁。",
                   "请点开群里的「会员中心」链接。", status=401)


async def sandbox_sign_in(request: web.Request) -> web.StreamResponse:
    """Development: ``?as=<sandbox member id>`` signs in as that sandbox member (this machine only)."""
    who = request.query.get("as", "")
    if not SANDBOX_ID.match(who):
        return message(request, "沙盒会员中心", "在地址后加 ?as=成员ID（如 /m/?as=u1）即以该沙盒成员身份打开，",
                       "或在沙盒聊天页点「会员中心」。", status=401)
    now = auth.now_of(request)
    async with request.app[DB].transaction() as s:
        refs = await community.touch_members(s, {(SANDBOX, who): Sighting()}, now=now)
    target = auth.safe_next(links.next_path(request))  # the link's campaign kept
    response = web.HTTPFound(target)
    await auth.start_session(request, response, refs[(SANDBOX, who)].id)
    log.info("member center: sandbox member %s signed in from this machine", who)
    raise response


async def sandbox_switch(request: web.Request) -> web.StreamResponse:
    """``/m/?as=`` with a session: switch to that sandbox member (this machine only)."""
    return await sandbox_sign_in(request)


@auth.member_only
async def sign_out(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/m/")
    await auth.end_session(request, response, request[auth.VISITOR])
    raise response


async def static_file(request: web.Request) -> web.StreamResponse:
    """A file shipped beside the member center, by name (nothing a caller sends reaches the disk)."""
    found = STATIC_FILES.get(request.match_info["filename"])
    if found is None:
        raise web.HTTPNotFound(reason="没有这个文件")
    response = web.FileResponse(found)
    response.headers["Cache-Control"] = "public, max-age=86400"  # one download a day on a cheap phone
    return response


@web.middleware
async def member_center_errors(request: web.Request, handler: auth.Handler) -> web.StreamResponse:
    """Under /m/: at most ``pages_per_min_per_address`` requests a minute from one address, and
    an error is a page in Chinese, never a trace."""
    if not request.path.startswith("/m/") and request.path != "/m":
        return await handler(request)
    try:
        if not request.app[auth.PAGES].allow(auth.address_of(request), auth.now_of(request).timestamp()):
            raise web.HTTPTooManyRequests(reason="访问太频繁了，请稍等一分钟再试")
        request = params.sized(request)  # a photo's route: its own body limit
        await params.check(request)
        if "as" in request.query and request.method == "GET" and SANDBOX in request.app[CHANNELS] and _local(request):
            return await sandbox_sign_in(request)
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return message(request, "出错了", exc.reason or "出错了", status=exc.status,
                       link="/m/", link_text="回到首页")
    except Exception as exc:
        if is_transient(exc):
            log.warning("database busy on %s %s (%s): answered 503", request.method, request.path, type(exc).__name__)
            return busy(message(request, "人有点多", "请稍后刷新重试", status=503))
        log.exception("member center error on %s %s", request.method, request.path)
        return message(request, "出错了", "服务器出错了，请稍后再试", status=500)


async def to_home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/m/")


def add_routes(app: web.Application) -> None:
    app.middlewares.append(member_center_errors)
    links.install(app)
    app.setdefault(auth.SIGN_IN, sign_in_unavailable)
    app[pages.GLOBALS] = []
    r = app.router
    r.add_get("/m", to_home)
    r.add_get("/m/", pages.home, name="m_home")
    r.add_post("/m/checkin", pages.checkin, name="m_checkin")
    r.add_post("/m/signout", sign_out, name="m_signout")
    r.add_get("/m/static/{filename}", static_file, name="m_static")
    mall.add_routes(r)
    ledger.add_routes(r)
    tasks.add_routes(app)
    votes.add_routes(app)
    ranks.add_routes(app)
    me.add_routes(r)
    koc_form.add_routes(r)
