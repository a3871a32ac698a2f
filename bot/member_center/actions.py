"""A member's action on a page goes through the dispatcher like a chat message (``Update.page``):
the same rules, the member's lock (a sign-in on the page and one in chat at the same moment
are one sign-in), the same batch transaction and outbox; the answer comes back to the page."""
from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.appkeys import DISPATCHER
from bot.context import Context
from bot.dispatcher import FeedResult
from bot.member_center.auth import NOTICE_COOKIE, NOTICE_MAX, PATH, SIGNER, VISITOR, secure
from bot.update import Update
from storage.engine import DatabaseBusy

log = logging.getLogger("siyu.member_center")


async def act(request: web.Request, *, text: str | None = None,
              action: Callable[[Context], Awaitable[None]] | None = None, key: str | None = None) -> FeedResult:
    """Handle ``text`` (a keyword, routed as in chat) or run ``action`` as the signed-in member;
    what the handler answered is in ``shown``. The database too busy: a 503 page, nothing kept.
    ``key`` names the action (a form's one-time nonce): sent again, it is the dispatcher's
    duplicate (``result.duplicate``) and nothing is done twice."""
    visitor = request[VISITOR]
    dispatcher = request.app[DISPATCHER]
    member = visitor.member
    update = Update(channel=member.channel, key=update_key(member.id, key), sender=member.external_id,
                    at=dispatcher.clock.now(), text=text, page=True, action=action)
    try:
        return await dispatcher.feed(update)
    except DatabaseBusy:
        log.warning("member center: database busy; member %s's %s answered 503", member.id, request.path)
        raise web.HTTPServiceUnavailable(reason="人有点多，请稍后再试", headers={"Retry-After": "2"}) from None


def update_key(member_id: int | None, key: str | None = None) -> str:
    """The key of a page action's update: the member's own namespace, so no member's nonce meets another's."""
    return f"page:{member_id}:{key or secrets.token_hex(8)}"


def back(request: web.Request, route: str, result: FeedResult | str) -> web.HTTPSeeOther:
    """After a POST, to the page ``route`` (POST-redirect-GET: reloading it does not act again),
    with what the action answered in a short-lived signed cookie: a link cannot put words of its
    own on the brand's page, as a ``?notice=`` in the URL could."""
    notice = result if isinstance(result, str) else "\n".join(result.shown)
    response = web.HTTPSeeOther(request.app.router[route].url_for())
    if notice:
        response.set_cookie(NOTICE_COOKIE, request.app[SIGNER].dumps(notice[:NOTICE_MAX]), max_age=60, httponly=True,
                            samesite="Lax", secure=secure(request), path=PATH)
    return response
