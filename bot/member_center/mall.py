"""积分商城 (the points mall): the rewards with their picture, cost, stock left, level and window,
and whether the member can redeem each now (the reasons chat gives at once, from
``handlers.rewards.services.refusal``); a reward's page with a confirm form; the redemption
itself through the dispatcher (``act``), the same as 确认 in chat; my redemptions and codes."""
from __future__ import annotations

import functools
import re
import secrets
from typing import Any

from aiohttp import web

import bot.member_center.pictures as pictures
import handlers.rewards.services as redemptions
from bot.appkeys import CONFIG, DB, DISPATCHER
from bot.member_center.actions import act, back, update_key
from bot.member_center.auth import VISITOR, member_only, now_of
from bot.member_center.config import MEMBER_CENTER
from bot.member_center.render import local_time, notice_of, page
from bot.numbers import parse_id
from storage import points, rewards
from storage.models import Reward

NONCE = re.compile(r"^[0-9a-f]{32}$")  # the confirm form's one-time name (secrets.token_hex(16))
SHOWN = 50  # redemptions on my page


def reward_id_of(request: web.Request) -> int:
    found = parse_id(request.match_info["reward"])
    if found is None:
        raise web.HTTPNotFound(reason="没有这个奖品")
    return found


def picture_url(request: web.Request, reward: Reward) -> str:
    """The reward's picture by its id; the name's start in ``v`` makes a new picture a new URL
    (so a phone may keep the old one a day without showing it after a change)."""
    if not reward.picture:
        return ""
    url = request.app.router["m_reward_picture"].url_for(reward=str(reward.id))
    return str(url.with_query(v=reward.picture[:8]))


def why_not(request: web.Request, reason: str, reward: Reward, *, balance: int, mine: str | None) -> str:
    """A refusal's reason as a member reads it beside the reward."""
    texts = request.app[DISPATCHER].texts
    key = f"mall_why_{reason}" if f"mall_why_{reason}" in texts else "mall_why_inactive"
    return texts(key, short=max(0, reward.cost - balance), level=reward.min_level or "", mine=mine or "—",
                 limit=reward.per_member_limit, date=local_time(request, reward.starts_at, "%m-%d %H:%M"))


def _item(request: web.Request, reward: Reward, standing: tuple[str | None, str | None], balance: int
          ) -> dict[str, Any]:
    reason, mine = standing
    return {"reward": reward, "picture": picture_url(request, reward),
            "why": why_not(request, reason, reward, balance=balance, mine=mine) if reason else ""}


@member_only
async def mall(request: web.Request) -> web.Response:
    visitor = request[VISITOR]
    async with request.app[DB].read() as s:
        balance = await points.balance(s, visitor.member_id)
        shown = await rewards.listed(s, now=now_of(request))
        standings = await redemptions.refusals(s, request.app[CONFIG], visitor.member_id, shown, now=now_of(request))
    items = [_item(request, r, standing, balance) for r, standing in zip(shown, standings, strict=True)]
    return page(request, "mall.html", notice=notice_of(request), balance=balance, items=items)


@member_only
async def reward_page(request: web.Request) -> web.Response:
    visitor, reward_id = request[VISITOR], reward_id_of(request)
    async with request.app[DB].read() as s:
        reward = await rewards.get(s, reward_id)
        if reward is None or not reward.active:
            raise web.HTTPNotFound(reason="没有这个奖品，或它已下架")
        balance = await points.balance(s, visitor.member_id)
        standing = await redemptions.refusal(s, request.app[CONFIG], visitor.member_id, reward, now=now_of(request))
    item = _item(request, reward, standing, balance)
    # A fresh name for this confirmation: the same form sent twice is one redemption.
    return page(request, "reward.html", notice=notice_of(request), balance=balance, nonce=secrets.token_hex(16),
                **item)


@member_only
async def redeem(request: web.Request) -> web.StreamResponse:
    visitor, reward_id = request[VISITOR], reward_id_of(request)
    nonce = (await request.post()).get("nonce")
    if not isinstance(nonce, str) or not NONCE.match(nonce):
        raise web.HTTPBadRequest(reason="页面已过期，请返回商城重新兑换")
    async with request.app[DB].read() as s:
        if await rewards.get(s, reward_id) is None:
            raise web.HTTPNotFound(reason="没有这个奖品")
    key = f"redeem:{nonce}"
    result = await act(request, action=functools.partial(redemptions.redeem, reward_id=reward_id), key=key)
    if not result.duplicate:
        raise back(request, "m_redemptions", result)
    # The same confirmation again (a double tap, a reload): the first one's outcome, nothing charged twice.
    async with request.app[DB].read() as s:
        done = await rewards.by_key(s, f"{update_key(visitor.member_id, key)}:redeem")
    texts = request.app[DISPATCHER].texts
    raise back(request, "m_redemptions", texts("mall_redeem_repeated") if done is not None else
               texts("mall_redeem_repeated_refused"))


@member_only
async def my_redemptions(request: web.Request) -> web.Response:
    visitor = request[VISITOR]
    async with request.app[DB].read() as s:
        rows = await rewards.of_member(s, visitor.member_id, limit=SHOWN)
        balance = await points.balance(s, visitor.member_id)
    return page(request, "redemptions.html", notice=notice_of(request), rows=rows, balance=balance)


@member_only
async def one_redemption(request: web.Request) -> web.Response:
    """One of my redemptions (its code, large, to show at a counter); another member's is not found."""
    visitor = request[VISITOR]
    redemption_id = parse_id(request.match_info["redemption"])
    async with request.app[DB].read() as s:
        row = await s.get(rewards.Redemption, redemption_id) if redemption_id is not None else None
        reward = await rewards.get(s, row.reward_id) if row is not None else None
    if row is None or reward is None or row.member_id != visitor.member_id:
        raise web.HTTPNotFound(reason="没有这个兑换记录")
    return page(request, "redemption.html", notice="", row=row, reward=reward, picture=picture_url(request, reward))


async def reward_picture(request: web.Request) -> web.StreamResponse:
    """A reward's picture, found by the reward's id (its file name is the server's own)."""
    reward_id = reward_id_of(request)
    async with request.app[DB].read() as s:
        reward = await rewards.get(s, reward_id)
    path = pictures.path_of(request.app[CONFIG][MEMBER_CENTER], reward.picture if reward is not None else None)
    if reward is None or reward.picture is None or path is None:
        raise web.HTTPNotFound(reason="没有这张图片")
    etag = f'"{reward.picture}"'
    headers = {"Cache-Control": "public, max-age=86400", "ETag": etag, "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    response = web.FileResponse(path, headers={**headers, "Content-Type": pictures.content_type(reward.picture)})
    return response


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/m/mall", mall, name="m_mall")
    r.add_get("/m/mall/{reward}", reward_page, name="m_mall_reward")
    r.add_post("/m/mall/{reward}/redeem", redeem, name="m_mall_redeem")
    r.add_get("/m/redemptions", my_redemptions, name="m_redemptions")
    r.add_get("/m/redemptions/{redemption}", one_redemption, name="m_redemption")
    r.add_get("/m/pictures/reward/{reward}", reward_picture, name="m_reward_picture")
