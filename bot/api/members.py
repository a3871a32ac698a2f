"""/api/members: a member, search, tags, points (balance, entries, grants with an idempotency key)."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from bot.api.base import ApiError, Body, JsonInt, acting, actor, answer, body, int_param, ok, require
from bot.appkeys import CONFIG, DB
from handlers.levels.services import levels_of
from storage import points, tags
from storage.models import Member, PointEntry


async def _member(session: AsyncSession, request: web.Request) -> Member:
    """The member the path names, by their channel's id (``?channel=`` when two channels share it)."""
    external_id = request.match_info["id"]
    query = select(Member).where(col(Member.external_id) == external_id)
    if channel := request.query.get("channel"):
        query = query.where(col(Member.channel) == channel)
    found = list((await session.execute(query.limit(2))).scalars())
    if not found:
        raise ApiError(404, "not_found", f"no member {external_id!r}")
    if len(found) > 1:
        raise ApiError(409, "ambiguous", f"{external_id!r} is known on several channels: add ?channel=")
    return found[0]


async def card(session: AsyncSession, request: web.Request, member: Member) -> dict[str, Any]:
    """The fixed shape integrators rely on: id, name, points (the balance), level, tags."""
    lifetime = await points.lifetime(session, member.id)
    return {"id": member.external_id, "name": member.name, "points": await points.balance(session, member.id),
            "level": levels_of(request.app[CONFIG]).tier(lifetime), "tags": await tags.of_member(session, member.id)}


@require("viewer", query=("channel",))
async def get_member(request: web.Request) -> web.Response:
    async with request.app[DB].read() as session:
        return ok(await card(session, request, await _member(session, request)))


@require("viewer", query=("q", "limit"))
async def search_members(request: web.Request) -> web.Response:
    q = request.query.get("q", "").strip()
    if len(q) > 128:
        raise ApiError(400, "bad_request", "q is at most 128 characters")
    limit = int_param(request, "limit", 20, 1, 100)
    async with request.app[DB].read() as session:
        query = select(Member).order_by(col(Member.id)).limit(limit)
        if q:
            query = query.where(or_(col(Member.external_id).startswith(q, autoescape=True),
                                    col(Member.name).contains(q, autoescape=True)))
        found = list((await session.execute(query)).scalars())
        return ok({"members": [await card(session, request, m) for m in found]})


class TagChange(Body):
    add: list[str] = Field(default_factory=list, max_length=50)
    remove: list[str] = Field(default_factory=list, max_length=50)


def _blank(tag: str) -> bool:
    """Only spaces: Python's and JSON Schema's (its \\s adds U+FEFF), as the OpenAPI file's pattern says."""
    return all(c.isspace() or c == "\ufeff" for c in tag)


@require("operator", query=("channel",))
async def change_tags(request: web.Request) -> web.Response:
    change = await body(request, TagChange)
    if any(_blank(t) or len(t) > 64 for t in [*change.add, *change.remove]):
        raise ApiError(422, "invalid", "a tag is 1 to 64 characters, not only spaces")
    async with acting(request, "api.tags", {"member": request.match_info["id"], **change.model_dump()}) as ctx:
        member = await _member(ctx.session, request)
        await tags.add(ctx.session, member.id, change.add, source=actor(request), now=ctx.now)
        await tags.remove(ctx.session, member.id, change.remove)
        return answer(request, {"tags": await tags.of_member(ctx.session, member.id)})


def _entry(e: PointEntry) -> dict[str, Any]:
    return {"id": e.id, "delta": e.delta, "kind": e.kind, "reason": e.reason, "issuer": e.issuer,
            "at": e.created_at.isoformat()}


@require("viewer", query=("channel", "limit"))
async def get_points(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 20, 1, 200)
    async with request.app[DB].read() as session:
        member = await _member(session, request)
        return ok({"balance": await points.balance(session, member.id),
                   "pending": await points.pending(session, member.id),
                   "lifetime": await points.lifetime(session, member.id),
                   "entries": [_entry(e) for e in await points.recent(session, member.id, limit)]})


class Grant(Body):
    amount: JsonInt = Field(ge=-1_000_000, le=1_000_000)  # positive grants, negative deducts
    reason: str = Field(min_length=1, max_length=200)
    key: str = Field(min_length=1, max_length=120)  # the caller's idempotency key


@require("operator", query=("channel",))
async def grant_points(request: web.Request) -> web.Response:
    grant = await body(request, Grant)
    if grant.amount == 0:
        raise ApiError(422, "invalid", "amount must not be 0")
    key = f"{actor(request)}:{grant.key}"
    async with acting(request, "api.points", {"member": request.match_info["id"], **grant.model_dump()}) as ctx:
        member = await _member(ctx.session, request)
        try:
            if grant.amount > 0:
                posted = await points.credit(ctx.session, member.id, grant.amount, key=key, reason=grant.reason,
                                             now=ctx.now, issuer=actor(request), kind=points.GRANT)
            else:
                posted = await points.spend(ctx.session, member.id, -grant.amount, key=key, reason=grant.reason,
                                            now=ctx.now, issuer=actor(request), kind=points.DEDUCT)
        except points.NotEnoughPoints:
            raise ApiError(409, "not_enough_points",
                           f"the member has {await points.balance(ctx.session, member.id)} points") from None
        if not posted.done:
            # A repeated key changes nothing and says so (200 instead of 201); used before for
            # another member or amount it is the caller's mistake, not a grant already made.
            first = await points.entry(ctx.session, key)
            if first is None or (first.member_id, first.delta) != (member.id, grant.amount):
                raise ApiError(409, "idempotency_mismatch", f"the key {grant.key!r} was used for another grant "
                                                            "(another member or amount): use a new key")
        return answer(request, {"balance": posted.balance, "duplicate": not posted.done},
                      status=201 if posted.done else 200)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/members", search_members)
    router.add_get("/api/members/{id}", get_member)
    router.add_post("/api/members/{id}/tags", change_tags)
    router.add_get("/api/members/{id}/points", get_points)
    router.add_post("/api/members/{id}/points", grant_points)
