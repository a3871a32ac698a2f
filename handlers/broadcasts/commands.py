"""Operators' broadcasts: ``/broadcast <目标> <内容>`` (目标: all, tag:<标签>, or group ids
separated by commas) shows the number of groups and a preview and waits for "确认";
``/broadcast status [编号]`` reports where each group stands; ``/broadcast cancel <编号>``
withdraws what has not gone out. ``/grouptag`` tags groups for targeting; ``/sop`` lists,
pauses and resumes playbooks."""
from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

import handlers.broadcasts.cards as cards
import handlers.broadcasts.flow as flow
from bot.channels.base import Capability
from bot.commandline import UsageError, parse
from bot.context import Context
from bot.numbers import parse_id
from bot.router import Router
from handlers.broadcasts.config import PLAYBOOKS, PlaybookConfig, link_problems, member_center
from handlers.broadcasts.planner import link_values, render
from handlers.broadcasts.services import parse_target
from handlers.broadcasts.status import state_now, status_text
from storage import audit, broadcasts, outbox
from storage.models import Broadcast, Group

router = Router("broadcasts")
MAX_TEXT = 4000


async def _status(ctx: Context, broadcast_id: int | None) -> None:
    if broadcast_id is None:
        broadcast_id = (await ctx.session.execute(select(col(Broadcast.id)).where(col(Broadcast.source) == "adhoc")
                                                  .order_by(col(Broadcast.id).desc()).limit(1))).scalar_one_or_none()
    b = await broadcasts.get(ctx.session, broadcast_id) if broadcast_id is not None else None
    if b is None:
        ctx.reply(ctx.texts("broadcast_unknown", id=broadcast_id or "—"))
        return
    counts = await broadcasts.progress(ctx.session, b.id)
    ctx.reply(status_text(ctx.texts, b, counts, await state_now(ctx.session, b, counts, ctx.now)))


@router.command("broadcast", role="operator")
async def broadcast_command(ctx: Context) -> None:
    """群发到多个群（先预览，回复「确认」才发出），查看进度或撤回
    /broadcast <all|tag:标签|群ID,群ID> <内容>（另起几行「标题：」「链接：」加卡片）
    /broadcast status [编号]
    /broadcast cancel <编号>
    /broadcast help"""
    words = ctx.args.strip().split(maxsplit=1)
    head, rest = (words[0] if words else ""), (words[1].strip() if len(words) > 1 else "")
    if head in ("help", "--help", "帮助"):
        ctx.reply(ctx.texts("broadcast_help"))
        return
    if head == "status":
        if rest and parse_id(rest) is None:
            ctx.reply(ctx.texts("broadcast_unknown", id=rest[:32]))
            return
        await _status(ctx, parse_id(rest))
        return
    if head == "cancel":
        broadcast_id = parse_id(rest)
        if broadcast_id is None:
            ctx.reply(ctx.texts("broadcast_usage"))
            return
        b = await broadcasts.get(ctx.session, broadcast_id)
        pending = await broadcasts.cancel(ctx.session, b.id, now=ctx.now) if b is not None else None
        await audit.record(ctx.session, actor=ctx.actor, action="broadcast.cancel",
                           result="ok" if pending is not None else "refused", now=ctx.now, args={"broadcast": rest})
        if b is None:
            ctx.reply(ctx.texts("broadcast_unknown", id=rest))
            return
        await _status(ctx, b.id)
        if pending is None:
            ctx.reply(ctx.texts("broadcast_nothing_to_cancel", id=b.id))
            return
        withdrawn = await outbox.withdraw(ctx.session, pending)
        ctx.reply(ctx.texts("broadcast_cancelled", id=b.id, withdrawn=withdrawn))
        return
    target = parse_target(head) if head else None
    rest, card, problems = cards.from_lines(rest)
    if target is None or not rest or len(rest) > MAX_TEXT:
        ctx.reply(ctx.texts("broadcast_usage"))
        return
    if card is not None:
        problems += cards.problems(card, member_center_url=member_center(ctx.config))
    problems += link_problems(ctx.config, f"{rest} {cards.used_placeholders(card)}")
    if problems:
        ctx.reply(ctx.texts("broadcast_card_refused", problems=cards.explain(ctx.texts, problems)))
        return
    groups = await broadcasts.targets(ctx.session, target)
    if not groups:
        ctx.reply(ctx.texts("broadcast_no_groups", target=head[:64]))
        return
    broadcast_id = await broadcasts.create(
        ctx.session, key=f"adhoc:{ctx.update.key}", source="adhoc", slot=ctx.now, template=rest, target=target,
        status=broadcasts.PREVIEW, created_by=ctx.actor, now=ctx.now, card=card)
    if broadcast_id is None:
        return  # a retry of this very command
    await audit.record(ctx.session, actor=ctx.actor, action="broadcast.create", result="ok", now=ctx.now,
                       args={"broadcast": broadcast_id, "target": target, "groups": len(groups),
                             **({"card": card} if card else {})})
    first = groups[0]
    values = {"group": first.name or ctx.texts("group_name_unknown"), **await link_values(
        ctx.session, ctx.config, f"{rest} {cards.used_placeholders(card)}", source=f"broadcast:{broadcast_id}",
        group_id=first.id, at=ctx.now)}
    preview = render(rest, values)
    if card is not None:  # the card as the first group gets it (channels without cards: in the text)
        preview += "\n" + cards.preview(ctx.texts, cards.render(card, values))
    # Groups a person must post to (WeCom customer groups): the operator is told how many.
    owners = sum(1 for g in groups if Capability.SEND_OWNER_TASK in ctx.config.capabilities(g.channel))
    await ctx.flows.start(ctx, flow.NAME, {
        "id": broadcast_id, "groups": len(groups), "preview": preview,
        "owners": ctx.texts("broadcast_owner_note", count=owners) if owners else "",
    })


@router.command("grouptag", role="operator")
async def grouptag_command(ctx: Context) -> None:
    """给群打标签（群发时用 tag:标签 选群）
    /grouptag list
    /grouptag add <标签> <群ID,群ID>
    /grouptag remove <标签> <群ID,群ID>"""
    words = ctx.args.split()
    if words[:1] == ["list"]:
        rows = (await ctx.session.execute(select(col(Group.external_id), col(Group.name)).order_by(col(Group.id))
                                          .limit(200))).all()
        ctx.reply("\n".join(f"{r.external_id} {r.name or ''}".strip() for r in rows)
                  or ctx.texts("broadcast_no_groups", target="all"))
        return
    if len(words) != 3 or words[0] not in ("add", "remove") or len(words[1]) > 64:
        ctx.reply(ctx.texts("grouptag_usage"))
        return
    action, tag, ids = words[0], words[1], words[2].split(",")
    found = list((await ctx.session.execute(select(col(Group.id)).where(col(Group.external_id).in_(ids)))).scalars())
    await broadcasts.tag_groups(ctx.session, found, [tag], remove=action == "remove")
    await audit.record(ctx.session, actor=ctx.actor, action=f"grouptag.{action}", result="ok", now=ctx.now,
                       args={"tag": tag, "groups": ids})
    ctx.reply(ctx.texts("grouptag_done", tag=tag, count=len(found), missing=len(ids) - len(found)))


async def _last_slot(ctx: Context, last: Broadcast) -> str:
    """The playbook's latest slot and where it stands (read from its groups, as everywhere)."""
    state = await state_now(ctx.session, last, await broadcasts.progress(ctx.session, last.id), ctx.now)
    return f"{last.slot.astimezone(ctx.zone).strftime('%m-%d %H:%M')} {ctx.texts(f'broadcast_state_{state}')}"


def _when(ctx: Context, p: PlaybookConfig) -> str:
    if p.cron:
        return p.cron
    if p.at is not None:
        return ctx.texts("sop_when_once", at=p.at.astimezone(ctx.zone).strftime("%Y-%m-%d %H:%M"))
    if p.after_group_created_days is not None:
        return ctx.texts("sop_when_group_day", days=p.after_group_created_days)
    return ctx.texts("sop_when_member_day", days=p.after_member_joined_days)


def _state(ctx: Context, p: PlaybookConfig, paused: set[str], last: list[Broadcast]) -> str:
    """A one-shot playbook (``at``) ends once its slot is planned: it reads sent, missed or
    cancelled after it, and waiting before; the others run until disabled or paused."""
    if not p.enabled:
        return "off"
    if p.at is not None:
        ran = last[0] if last and last[0].slot == p.at else None
        if ran is not None:
            return {broadcasts.MISSED: "missed", broadcasts.CANCELLED: "cancelled"}.get(ran.status, "done")
        if p.name in paused:
            return "paused"
        return "due" if p.at <= ctx.now else "waiting"
    return "paused" if p.name in paused else "on"


@router.command("sop", role="operator")
async def sop_command(ctx: Context) -> None:
    """查看、暂停或恢复定时话题（SOP）
    /sop list
    /sop pause <名称>
    /sop resume <名称>"""
    args = parse(ctx.args)
    action = args.choice(0, "动作", ("list", "pause", "resume"))
    configured = ctx.config[PLAYBOOKS]
    names = [p.name for p in configured]
    if action == "list":
        paused = await broadcasts.paused(ctx.session)
        lines = []
        for p in configured:
            last = await broadcasts.recent(ctx.session, p.name, limit=1)
            lines.append(ctx.texts("sop_line", name=p.name, when=_when(ctx, p),
                                   state=ctx.texts(f"sop_state_{_state(ctx, p, paused, last)}"),
                                   last=await _last_slot(ctx, last[0]) if last else "—"))
        ctx.reply("\n".join(lines) or ctx.texts("sop_none"))
        return
    name = args.choice(1, "名称", names) if names else args.word(1, "名称")
    if name not in names:
        raise UsageError(f"没有名为「{name[:32]}」的定时话题")
    await broadcasts.set_paused(ctx.session, name, action == "pause", by=ctx.actor, now=ctx.now)
    ctx.reply(ctx.texts(f"sop_{action}d", name=name))
