"""Operators' broadcasts: ``/broadcast <目标> <内容>`` (目标: all, tag:<标签>, or group ids
separated by commas) shows the number of groups and a preview and waits for "确认";
``/broadcast status [编号]`` reports where each group stands; ``/broadcast cancel <编号>``
withdraws what has not gone out. ``/grouptag`` tags groups for targeting."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from bot.config import Config
from bot.context import Context
from bot.jobs import Job
from bot.router import Router
from bot.texts import Texts
from flows import broadcast_confirm
from handlers.fanout import render
from storage import announcements, audit, broadcasts, outbox
from storage.broadcast_models import Broadcast, Delivery
from storage.engine import Database
from storage.models import Group

log = logging.getLogger("siyu.broadcast")

router = Router("broadcast")
MAX_TEXT = 4000
STATUS_ORDER = ("delivered", "queued", "planned", "awaiting_owner", "failed", "expired", "skipped", "cancelled")


def parse_target(word: str) -> dict[str, object] | None:
    if word == "all":
        return {"all": True}
    if word.startswith("tag:"):
        tags = [t for t in word[4:].split(",") if t]
        return {"tags": tags} if tags and all(len(t) <= 64 for t in tags) else None
    ids = [g for g in word.split(",") if g]
    return {"groups": ids} if ids and all(len(g) <= 128 for g in ids) else None


def _actor(ctx: Context) -> str:
    return f"{ctx.update.channel}:{ctx.update.sender}"


def status_text(texts: Texts, b: Broadcast, counts: dict[str, int]) -> str:
    parts = [texts("broadcast_count", status=texts(f"delivery_{s}"), count=counts[s]) for s in STATUS_ORDER if counts.get(s)]
    return texts("broadcast_status", id=b.id, status=texts(f"broadcast_state_{b.status}"), counts="，".join(parts) or "—",
                 total=sum(counts.values()))


async def _status(ctx: Context, broadcast_id: int | None) -> None:
    if broadcast_id is None:
        broadcast_id = (await ctx.session.execute(select(Broadcast.id).where(Broadcast.source == "adhoc")
                                                  .order_by(Broadcast.id.desc()).limit(1))).scalar_one_or_none()
    b = await broadcasts.get(ctx.session, broadcast_id) if broadcast_id is not None else None
    if b is None:
        ctx.reply(ctx.texts("broadcast_unknown", id=broadcast_id or "—"))
        return
    ctx.reply(status_text(ctx.texts, b, await broadcasts.progress(ctx.session, b.id)))


@router.command("broadcast", role="operator")
async def broadcast_command(ctx: Context) -> None:
    """群发到多个群：/broadcast <all|tag:标签|群ID,群ID> <内容>；/broadcast status [编号]；/broadcast cancel <编号>"""
    head, _, rest = ctx.args.strip().partition(" ")
    rest = rest.strip()
    if head == "status":
        await _status(ctx, int(rest) if rest.isdigit() else None)
        return
    if head == "cancel":
        if not rest.isdigit():
            ctx.reply(ctx.texts("broadcast_usage"))
            return
        b = await broadcasts.get(ctx.session, int(rest))
        withdrawn = await outbox.withdraw(ctx.session, await broadcasts.cancel(ctx.session, int(rest), now=ctx.now)) if b else 0
        await audit.record(ctx.session, actor=_actor(ctx), action="broadcast.cancel", result="ok" if b else "refused",
                           now=ctx.now, args={"broadcast": rest})
        if b is None:
            ctx.reply(ctx.texts("broadcast_unknown", id=rest))
            return
        await _status(ctx, b.id)
        ctx.reply(ctx.texts("broadcast_cancelled", id=b.id, withdrawn=withdrawn))
        return
    target = parse_target(head) if head else None
    if target is None or not rest or len(rest) > MAX_TEXT:
        ctx.reply(ctx.texts("broadcast_usage"))
        return
    groups = await broadcasts.targets(ctx.session, target)
    if not groups:
        ctx.reply(ctx.texts("broadcast_no_groups", target=head[:64]))
        return
    broadcast_id = await broadcasts.create(
        ctx.session, key=f"adhoc:{ctx.update.key}", source="adhoc", slot=ctx.now, template=rest, target=target,
        status=broadcasts.PREVIEW, created_by=_actor(ctx), now=ctx.now)
    if broadcast_id is None:
        return  # a retry of this very command
    await audit.record(ctx.session, actor=_actor(ctx), action="broadcast.create", result="ok", now=ctx.now,
                       args={"broadcast": broadcast_id, "target": target, "groups": len(groups)})
    first = groups[0]
    preview = render(rest, {"group": first.name or ctx.texts("group_name_unknown")})
    owners = sum(1 for g in groups if g.channel == "wecom")
    assert ctx.dispatcher.flows is not None
    await ctx.dispatcher.flows.start(ctx, broadcast_confirm.NAME, {
        "id": broadcast_id, "groups": len(groups), "preview": preview,
        "owners": ctx.texts("broadcast_owner_note", count=owners) if owners else "",
    })


@router.command("grouptag", role="operator")
async def grouptag_command(ctx: Context) -> None:
    """给群打标签：/grouptag add|remove <标签> <群ID,群ID>；/grouptag list"""
    words = ctx.args.split()
    if words[:1] == ["list"]:
        rows = (await ctx.session.execute(select(Group.external_id, Group.name).order_by(Group.id).limit(200))).all()
        ctx.reply("\n".join(f"{r.external_id} {r.name or ''}".strip() for r in rows) or ctx.texts("broadcast_no_groups", target="all"))
        return
    if len(words) != 3 or words[0] not in ("add", "remove") or len(words[1]) > 64:
        ctx.reply(ctx.texts("grouptag_usage"))
        return
    action, tag, ids = words[0], words[1], words[2].split(",")
    found = list((await ctx.session.execute(select(Group.id).where(Group.external_id.in_(ids)))).scalars())
    await broadcasts.tag_groups(ctx.session, found, [tag], remove=action == "remove")
    await audit.record(ctx.session, actor=_actor(ctx), action=f"grouptag.{action}", result="ok", now=ctx.now,
                       args={"tag": tag, "groups": ids})
    ctx.reply(ctx.texts("grouptag_done", tag=tag, count=len(found), missing=len(ids) - len(found)))


REPORT_WITHIN = timedelta(days=7)


async def report_finished(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Tell the operator who started a broadcast where it ended, once nothing of it is planned
    or queued any more (groups awaiting their owner are counted as such). Returns reports sent."""
    async with db.read() as session:
        open_ = select(Delivery.id).where(Delivery.broadcast_id == Broadcast.id,
                                          Delivery.status.in_((broadcasts.PLANNED, broadcasts.QUEUED)))
        done = list((await session.execute(select(Broadcast).where(
            Broadcast.source == "adhoc", Broadcast.status == broadcasts.PLANNED, Broadcast.planned_at >= now - REPORT_WITHIN,
            ~open_.exists()).order_by(Broadcast.id).limit(100))).scalars())
    sent = 0
    for b in done:
        channel, _, operator = b.created_by.partition(":")
        async with db.transaction() as session:
            if not await announcements.claim(session, f"broadcast:{b.id}:report", now=now):
                continue
            text = texts("broadcast_finished") + status_text(texts, b, await broadcasts.progress(session, b.id))
            await outbox.enqueue(session, [outbox.Outgoing(channel, text, to=operator)], now=now)
            sent += 1
    return sent


def jobs(config: Config) -> list[Job]:
    return [Job("broadcast_reports", report_finished, every_s=30.0)]
