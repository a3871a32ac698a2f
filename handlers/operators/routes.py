"""Operators' commands about people: roles, members, tags, flows, the audit trail.

Every command declares its role; the dispatcher refuses (and audits) a sender without it and
audits every run. Arguments are parsed like a CLI (``bot.commandline``); wrong ones get the
usage from the docstring.
"""
from __future__ import annotations

from bot.commandline import UsageError, find_member, parse
from bot.context import Context
from bot.roles import ROLES, has_role
from bot.router import Router
from flows.engine import describe
from handlers.levels.services import levels_of
from handlers.operators.services import profile
from storage import audit, forget, points, roles
from storage import flows as member_flows
from storage import tags as member_tags

router = Router("operators")
AUDIT_MAX = 50
CONFIRM = "确认"

@router.command("role", role="viewer")
async def role_command(ctx: Context) -> None:
    """查看或修改运营角色（授予、撤销需要管理员）
    /role list
    /role grant <用户> <观察员|运营|管理员>
    /role revoke <用户>"""
    args = parse(ctx.args)
    action = args.choice(0, "动作", ("list", "grant", "revoke"))
    if action == "list":
        held = await roles.all_roles(ctx.session)
        ctx.reply("\n".join(ctx.texts("role_line", who=r.external_id, channel=r.channel,
                                      role=ctx.texts(f"role_{r.role}"),
                                      by=ctx.texts.label("granted_by", r.granted_by)) for r in held)
                  or ctx.texts("role_none"))
        return
    if not has_role(ctx.role, "admin"):
        ctx.reply(ctx.texts("command_refused", command="role " + action, role=ctx.texts("role_min_admin")))
        await audit.record(ctx.session, actor=ctx.actor, action=f"role.{action}", result="refused", now=ctx.now,
                           args={"args": ctx.args})
        return
    member = await find_member(ctx, args.word(1, "用户"))
    if member.external_id == ctx.update.sender and member.channel == ctx.update.channel:
        raise UsageError("不能修改自己的角色")
    if action == "grant":
        role = args.choice(2, "角色", ROLES[1:], {r: ctx.texts(f"role_{r}") for r in ROLES[1:]})
        await roles.grant(ctx.session, member.channel, member.external_id, role, by=ctx.actor, now=ctx.now)
        ctx.reply(ctx.texts("role_granted", who=member.name or member.external_id, role=ctx.texts(f"role_{role}")))
    else:
        removed = await roles.revoke(ctx.session, member.channel, member.external_id)
        ctx.reply(ctx.texts("role_revoked", who=member.name or member.external_id, count=removed))


@router.command("member", role="viewer")
async def member_command(ctx: Context) -> None:
    """查看用户：资料、标签、积分、等级、分层和流程
    /member <用户ID|名字|#编号>"""
    args = parse(ctx.args)
    member = await find_member(ctx, args.word(0, "用户"))
    args.no_more_than(1)
    lifetime = await points.lifetime(ctx.session, member.id)
    flows = ["：".join(describe(ctx.flows.flows, ctx.texts, f.flow, f.state, f.active))
             for f in await member_flows.of_member(ctx.session, member.id)]
    # The level is on its own line, from the points (the attribute may lag a changed ladder).
    lines = profile(ctx.config, ctx.texts, member.attributes, leave_out=("level",))
    ctx.reply(ctx.texts(
        "member_card", id=member.id, external_id=member.external_id, channel=member.channel,
        name=member.name or "—", status=ctx.texts.label("member_status", member.status),
        source=member.channel_code or "—",
        first_seen=member.first_seen_at.astimezone(ctx.zone).strftime("%Y-%m-%d"), messages=member.message_count,
        tags="、".join(await member_tags.of_member(ctx.session, member.id)) or "—",
        balance=await points.balance(ctx.session, member.id), pending=await points.pending(ctx.session, member.id),
        level=levels_of(ctx.config).tier(lifetime), lifetime=lifetime, stage=member.stage or "泛用户",
        flows="、".join(flows) or "—",
        profile="，".join(ctx.texts("profile_item", key=k, value=v) for k, v in lines) or "—",
    ))


@router.command("tag", role="operator")
async def tag_command(ctx: Context) -> None:
    """给用户加或去标签
    /tag add <用户> <标签> [标签...]
    /tag remove <用户> <标签> [标签...]"""
    args = parse(ctx.args)
    action = args.choice(0, "动作", ("add", "remove"))
    member = await find_member(ctx, args.word(1, "用户"))
    tags = args.words[2:] or [args.word(2, "标签")]
    if any(not t.strip() or len(t) > 64 for t in tags):
        raise UsageError("标签要有 1 到 64 个字，不能是空白")
    if action == "add":
        await member_tags.add(ctx.session, member.id, tags, source=ctx.actor, now=ctx.now)
    else:
        await member_tags.remove(ctx.session, member.id, tags)
    now_tags = await member_tags.of_member(ctx.session, member.id)
    ctx.reply(ctx.texts("tag_done", who=member.name or member.external_id, tags="、".join(now_tags) or "—"))


@router.command("flow", role="operator")
async def flow_command(ctx: Context) -> None:
    """重置或移动用户的对话流程
    /flow reset <用户> <流程>
    /flow move <用户> <流程> <状态>"""
    args = parse(ctx.args)
    action = args.choice(0, "动作", ("reset", "move"))
    member = await find_member(ctx, args.word(1, "用户"))
    engine = ctx.flows
    flow_name = args.choice(2, "流程", sorted(engine.flows), {n: f.title for n, f in engine.flows.items()})
    flow = engine.flows[flow_name]
    state = flow.initial if action == "reset" else args.choice(3, "状态", list(flow.states))
    await engine.move(ctx, member.id, flow_name, state, reason=f"/flow {action}")
    ctx.reply(ctx.texts("flow_moved", who=member.name or member.external_id, flow=flow.title,
                        state=flow.state_label(ctx.texts, state)))


@router.command("forget", role="admin")
async def forget_command(ctx: Context) -> None:
    """删除用户的全部资料（用户依《个人信息保护法》要求删除时；不可撤销）
    /forget #编号          先看会删除什么
    /forget #编号 确认     删除（用 #编号：操作记录里只留编号）"""
    args = parse(ctx.args)
    member = await find_member(ctx, args.word(0, "用户"))
    args.no_more_than(2)
    if len(args.words) == 2 and args.words[1] != CONFIRM:
        raise UsageError(f"第二个参数只能是「{CONFIRM}」")
    who = member.name or member.external_id
    if await roles.role_of(ctx.session, member.channel, member.external_id) != "member":
        ctx.reply(ctx.texts("forget_has_role", who=who, id=member.id))
        return
    if len(args.words) < 2:
        ctx.reply(ctx.texts("forget_ask", who=who, id=member.id, balance=await points.balance(ctx.session, member.id)))
        return
    done = await forget.forget(ctx.session, member.id, now=ctx.now)
    assert done is not None  # found above, in this transaction
    await audit.record(ctx.session, actor=ctx.actor, action="member.forget", result="ok", now=ctx.now,
                       args={"member": member.id, "redemptions_cancelled": done.redemptions_cancelled,
                             "messages_dropped": done.messages_dropped})
    ctx.reply(ctx.texts("forget_done", id=member.id, redemptions=done.redemptions_cancelled,
                        messages=done.messages_dropped))


@router.command("audit", role="admin")
async def audit_command(ctx: Context) -> None:
    """查看最近的操作记录
    /audit [条数，默认 10，最多 50]"""
    args = parse(ctx.args)
    limit = args.number(0, "条数", low=1, high=AUDIT_MAX) if args.words else 10
    entries = await audit.latest(ctx.session, limit=limit)
    ctx.reply("\n".join(ctx.texts("audit_line", at=e.at.astimezone(ctx.zone).strftime("%m-%d %H:%M"), actor=e.actor,
                                  action=ctx.texts.label("audit", e.action.replace(".", "_")),
                                  result=ctx.texts.label("audit_result", e.result), args=_short(e.args))
              for e in entries)
              or ctx.texts("audit_none"))


def _short(args: dict[str, object] | None) -> str:
    text = " ".join(f"{k}={v}" for k, v in (args or {}).items() if v not in (None, "", [], {}))
    return text[:80] + ("…" if len(text) > 80 else "")
