"""Signing in to the member center with WeCom's web authorization (网页授权): a browser without
a session goes to WeCom's authorize page (developer.work.weixin.qq.com/document/path/91022) and
comes back to ``/m/oauth`` with a code and our state; ``auth/getuserinfo`` says whom the code
names (document/path/91023): a customer (``external_userid``), a staff member (``userid``), or
a WeChat user who is neither (``openid`` only), who is asked to add the brand first.

The state is random, kept in a short-lived signed cookie of this browser, compared in constant
time and dropped on use, so a link another browser started, a stale one, or a replayed one is
refused: otherwise someone could sign a victim's phone in as themselves (login CSRF). Every
failure is a page in Chinese for the member and a log line that says what the operator can do.
"""
from __future__ import annotations

import hmac
import logging
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from itsdangerous import BadSignature
from yarl import URL

import bot.member_center.auth as auth
from bot.appkeys import CHANNELS, CONFIG, DB, DISPATCHER
from bot.channels.wecom.api import BUSY, NETWORK, TOKEN_ERRORS, WeComError
from bot.channels.wecom.channel import WeComChannel
from bot.config import Config
from bot.member_center.config import MEMBER_CENTER
from bot.member_center.web import message
from storage import community
from storage.community import Sighting

log = logging.getLogger("siyu.member_center.oauth")

OAUTH_COOKIE = "siyu_m_oauth"
STATE_SALT = "siyu-member-center-oauth"  # not a session cookie's signature, whatever it holds
STATE_TTL_S = 600  # ten minutes to tap through; WeCom's code itself lives 5 (document/path/91023)
STATES_KEPT = 3  # links opened in several tabs at once each keep their own state
NEXT_MAX = 512  # characters of the page to come back to: the cookie stays small
# WeCom: "state ... a-zA-Z0-9, at most 128 bytes"; "code长度最大为512字节" (document/path/91022).
STATE_FORMAT = re.compile(r"^[A-Za-z0-9]{1,128}$")
CODE_MAX = 512
ID_MAX = 128  # members.external_id
INVALID_CODE = 40029  # "invalid code": unknown, used already, or older than 5 minutes
DOMAIN_NOT_TRUSTED = 50001  # "跳转的域名须完全匹配access_token对应应用的可信域名" (document/path/96442)
IP_NOT_TRUSTED = 60020  # this server's address is not among the app's 企业可信IP (wecom.md §4.2)
CUSTOMER, STAFF, WECHAT = "customer", "staff", "wechat"

WECOM = web.AppKey("member_center_wecom", WeComChannel)


def install(app: web.Application) -> bool:
    """WeCom's sign-in, when the WeCom channel is on (the sandbox's ``?as=`` stays, on this machine)."""
    channel = app[CHANNELS].get(WeComChannel.name)
    if not isinstance(channel, WeComChannel):
        return False
    app[WECOM] = channel
    app[auth.SIGN_IN] = sign_in
    app.router.add_get("/m/oauth", oauth_return, name="m_oauth")
    app.router.add_get("/m/contact-qr", contact_qr, name="m_contact_qr")
    return True


def public_url_set(config: Config) -> None:
    """WeCom sends members back to ``[server] public_url``/m/oauth: without it, no sign-in."""
    if not (config[MEMBER_CENTER].enabled and config.running(WeComChannel.name)):
        return
    if urlsplit(config.server.public_url).path not in ("", "/"):
        # The member center's cookies are for /m: behind a path prefix the browser would not send them.
        raise ValueError(f"[server] public_url {config.server.public_url!r}: the address of siyu itself, without "
                         "a path (the member center is <public_url>/m/ and WeCom's sign-in returns to "
                         "<public_url>/m/oauth)")
    if not config.server.public_url:
        raise ValueError(
            "[server] public_url is required when [wecom] and [member_center] are both enabled: the https "
            "address members reach siyu at, whose domain is the WeCom app's trusted domain (可信域名), such as "
            "https://club.example.com (http only for 127.0.0.1 or localhost); WeCom's web authorization "
            "sends members back to <public_url>/m/oauth (docs/member-center.md). Or set [member_center] "
            "enabled = false")


# -- going to WeCom ------------------------------------------------------------------------------


async def sign_in(request: web.Request) -> web.StreamResponse:
    """No session: to WeCom's authorize page, with a new state this browser keeps, and the page
    the member was opening to come back to."""
    state = secrets.token_hex(16)  # 128 random bits, in WeCom's a-zA-Z0-9
    wanted = request.path_qs if len(request.path_qs) <= NEXT_MAX else request.path[:NEXT_MAX]
    pending = [*_pending(request), [state, auth.safe_next(wanted), auth.now_of(request).timestamp()]]
    # As built (encoded=True): the redirect_uri stays percent-encoded, as WeCom asks (document/path/91022).
    response = web.HTTPFound(URL(authorize_url(request, state), encoded=True))
    _keep(request, response, pending[-STATES_KEPT:])
    raise response


def authorize_url(request: web.Request, state: str) -> str:
    """``{oauth_base_url}connect/oauth2/authorize?appid=...#wechat_redirect`` (document/path/91022):
    snsapi_base signs in silently; WeCom sends the browser to ``redirect_uri?code=&state=``."""
    settings = request.app[WECOM].config
    query = urlencode({
        "appid": settings.corp_id, "redirect_uri": request.app[CONFIG].server.base_url + "/m/oauth",
        "response_type": "code", "scope": "snsapi_base", "state": state, "agentid": settings.agent_id})
    return f"{settings.oauth_base_url}connect/oauth2/authorize?{query}#wechat_redirect"


def _pending(request: web.Request) -> list[list[Any]]:
    """The states this browser was given in the last ``STATE_TTL_S``: [state, next page, when]."""
    raw = request.cookies.get(OAUTH_COOKIE)
    if not raw:
        return []
    try:
        entries = request.app[auth.SIGNER].loads(raw, salt=STATE_SALT)
    except BadSignature:
        return []
    now = auth.now_of(request).timestamp()
    return [e for e in entries[-STATES_KEPT:] if isinstance(e, list) and len(e) == 3
            and isinstance(e[0], str) and isinstance(e[1], str) and isinstance(e[2], int | float)
            and now - STATE_TTL_S <= e[2] <= now + 60] if isinstance(entries, list) else []


def _keep(request: web.Request, response: web.StreamResponse, pending: list[list[Any]]) -> None:
    if pending:
        response.set_cookie(OAUTH_COOKIE, request.app[auth.SIGNER].dumps(pending, salt=STATE_SALT),
                            max_age=STATE_TTL_S, httponly=True, samesite="Lax", secure=auth.secure(request),
                            path=auth.PATH)
    elif OAUTH_COOKIE in request.cookies:
        response.del_cookie(OAUTH_COOKIE, path=auth.PATH)


# -- coming back ---------------------------------------------------------------------------------


async def oauth_return(request: web.Request) -> web.StreamResponse:
    """``GET /m/oauth?code=&state=``: the state checked and used up, the code asked about, the
    member signed in and sent where they were going."""
    code, state = request.query.get("code", ""), request.query.get("state", "")
    address = auth.address_of(request)
    if not code or len(code.encode()) > CODE_MAX or not code.isprintable() or not STATE_FORMAT.match(state):
        log.warning("member center: /m/oauth from %s without a usable code and state (not WeCom's redirect): "
                    "refused", address)
        return _again(request, "member_center_signin_expired", "/m/", status=400)
    pending = _pending(request)
    found = None
    for entry in pending:  # every one compared: the time taken says nothing of which matched
        if hmac.compare_digest(entry[0].encode(), state.encode()) and found is None:
            found = entry
    if found is None:
        log.warning("member center: sign-in from %s refused: its state is not one this browser was given in the "
                    "last %d minutes (an old or replayed link, one opened in another browser, or a forged one); "
                    "the member was asked to open the member center again", address, STATE_TTL_S // 60)
        response = _again(request, "member_center_signin_expired", "/m/", status=400)
        _keep(request, response, pending)
        return response
    rest = [entry for entry in pending if entry is not found]  # this state is used up, whatever follows
    target = auth.safe_next(found[1])
    try:
        answer = await request.app[WECOM].api.get_user_info(code)
    except WeComError as exc:
        response = _refused(request, exc, target)
        _keep(request, response, rest)
        return response
    who = identity_of(answer)
    if who is None or who[0] == WECHAT:
        response = _not_a_customer(request, address) if who else _no_identity(request, answer)
        _keep(request, response, rest)
        return response
    kind, external_id = who
    channel = request.app[WECOM].name
    async with request.app[DB].transaction() as s:
        # Unknown yet (a customer siyu has not met): a member of the WeCom channel from now on,
        # as the contact events and the sync create them.
        refs = await community.touch_members(s, {(channel, external_id): Sighting()}, now=auth.now_of(request))
    redirect = web.HTTPFound(target)
    _keep(request, redirect, rest)
    await auth.start_session(request, redirect, refs[(channel, external_id)].id)
    log.info("member center: WeCom %s %s signed in from %s", kind, external_id, address)
    raise redirect


def identity_of(answer: dict[str, Any]) -> tuple[str, str] | None:
    """(kind, id) from ``auth/getuserinfo``'s answer: the documented lower-case fields, or the
    older capitalised ones (``UserId``, ``OpenId``; document/path/91023, silenceper/wechat:
    work/oauth/oauth.go ResUserInfo)."""
    for kind, names in ((CUSTOMER, ("external_userid",)), (STAFF, ("userid", "UserId")),
                        (WECHAT, ("openid", "OpenId"))):
        for name in names:
            value = answer.get(name)
            if isinstance(value, str) and 0 < len(value) <= ID_MAX and value.isprintable() and value.strip():
                return kind, value
    return None


def _refused(request: web.Request, exc: WeComError, target: str) -> web.Response:
    """WeCom did not say who it is: what the operator can do, logged; the member a page."""
    code = exc.errcode
    if code == INVALID_CODE:
        log.warning("member center: WeCom refused the sign-in code (40029 invalid code: used already, older than "
                    "5 minutes, or not issued for this app); the member was asked to open the link again")
        return _again(request, "member_center_signin_code_used", target, status=400)
    if code in (NETWORK, BUSY):
        log.warning("member center: WeCom unreachable or busy for auth/getuserinfo (%s %s); the member was asked "
                    "to try again", code, exc.errmsg)
        return _again(request, "member_center_signin_unavailable", target,
                      title="member_center_signin_unavailable_title")
    if code == DOMAIN_NOT_TRUSTED:
        log.error("member center: WeCom refused auth/getuserinfo with 50001: the domain of [server] public_url "
                  "(%s) must be the app's trusted domain (管理后台 → 应用管理 → the app → 网页授权及JS-SDK → "
                  "可信域名; docs/member-center.md)", request.app[CONFIG].server.public_url)
    elif code == IP_NOT_TRUSTED:
        log.error("member center: WeCom refused auth/getuserinfo with 60020: add this server's outgoing address "
                  "to the app's 企业可信IP (管理后台 → 应用管理 → the app): %s", exc.errmsg)
    elif code in TOKEN_ERRORS:
        log.error("member center: WeCom refused the access token (%s %s): check [wecom] corp_id and secret",
                  code, exc.errmsg)
    else:
        log.error("member center: WeCom answered auth/getuserinfo with %s %s; the member could not sign in",
                  code, exc.errmsg)
    return _again(request, "member_center_signin_misconfigured", target,
                  title="member_center_signin_unavailable_title")


def _no_identity(request: web.Request, answer: dict[str, Any]) -> web.Response:
    log.error("member center: WeCom's auth/getuserinfo answer names nobody (fields: %s); the member could not "
              "sign in", ", ".join(sorted(str(k) for k in answer)[:10]))
    return _again(request, "member_center_signin_misconfigured", "/m/", title="member_center_signin_unavailable_title")


def _not_a_customer(request: web.Request, address: str) -> web.Response:
    """A WeChat user who is not the brand's customer (``openid`` only): the way to become one."""
    log.info("member center: a WeChat user who is not a customer (openid only) from %s was asked to add the brand "
             "first (a customer whose staff member is outside the app's visibility, 可见范围, looks the same)",
             address)
    texts = request.app[DISPATCHER].texts
    qr = request.app[CONFIG][MEMBER_CENTER].add_contact_qr_url
    picture = qr if qr.startswith("https://") else str(request.app.router["m_contact_qr"].url_for()) if qr else ""
    lines = [texts("member_center_not_customer")] + ([texts("member_center_not_customer_qr")] if picture else [])
    response = message(request, texts("member_center_not_customer_title"), *lines, status=403, picture=picture)
    host = urlsplit(qr).netloc if qr.startswith("https://") else ""
    if re.fullmatch(r"[A-Za-z0-9.-]+(:\d{1,5})?", host):  # the picture's site, and nothing else, may show it
        csp = response.headers["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = csp.replace("img-src 'self'", f"img-src 'self' https://{host}")
    return response


def _again(request: web.Request, line: str, link: str, *, status: int = 200,
           title: str = "member_center_signin_expired_title") -> web.Response:
    texts = request.app[DISPATCHER].texts
    return message(request, texts(title), texts(line), texts("member_center_signin_again"), status=status,
                   link=link, link_text=texts("member_center_signin_retry"))


async def contact_qr(request: web.Request) -> web.StreamResponse:
    """The channel code's picture when ``add_contact_qr_url`` is a file (nothing a caller sends
    names a file)."""
    qr = request.app[CONFIG][MEMBER_CENTER].add_contact_qr_url
    if not qr or qr.startswith("https://") or not Path(qr).is_file():
        raise web.HTTPNotFound(reason="没有这张图片")
    response = web.FileResponse(Path(qr))
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
