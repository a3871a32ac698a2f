"""``/handover``: an operator hands a staff member's customers and groups to another (在职/离职
继承), and follows it. The WeCom calls are the channel's (``services`` says why); the answer
comes when the channel has carried it out (``jobs.report_finished``)."""
from __future__ import annotations

import handlers.handover.services as services
from bot.commandline import UsageError, parse
from bot.context import Context
from bot.numbers import parse_id
from bot.router import Router
from storage import audit

router = Router("handover")
HELP = ("--help", "-h", "help", "帮助")


async def _status(ctx: Context, ref: str | None) -> None:
    handover_id = parse_id(ref) if ref else None
    h = await services.get(ctx.session, handover_id) if handover_id is not None else None
    if h is None:
        ctx.reply(ctx.texts("handover_unknown", id=(ref or "—")[:32]))
        return
    ctx.reply(await services.status_text(ctx.session, ctx.texts, h))


@router.command("handover", role="operator")
async def handover_command(ctx: Context) -> None:
    """把员工的客户和客户群转给另一位员工（在职继承 / 离职继承），或查看进度
    /handover <原跟进人> <接替人> [customers|groups|all] [mode=在职|离职]
    /handover status <编号>"""
    args = parse(ctx.args, options=("mode",))
    if not args.words or args.words[0] in HELP:
        ctx.reply(ctx.texts("handover_usage"))
        return
    if args.words[0] == "status":
        args.no_more_than(2)
        await _status(ctx, args.words[1] if len(args.words) > 1 else None)
        return
    args.no_more_than(3)
    from_staff, to_staff = args.word(0, "原跟进人"), args.word(1, "接替人")
    scope_word = args.words[2] if len(args.words) > 2 else "all"
    scope = services.SCOPE_WORDS.get(scope_word)
    if scope is None:
        raise UsageError(f"范围要是 customers / groups / all 之一，不是「{scope_word[:32]}」")
    mode_word = args.option("mode")
    mode = services.MODE_WORDS.get(mode_word) if mode_word is not None else None
    if mode_word is not None and mode is None:
        raise UsageError(f"mode 要是 在职 / 离职 之一，不是「{mode_word[:32]}」")
    try:
        h = await services.request(ctx.session, ctx.config, from_staff=from_staff, to_staff=to_staff, scope=scope,
                                   mode=mode, requested_by=ctx.actor, now=ctx.now)
    except services.Refused as exc:
        ctx.reply(exc.text(ctx.texts))
        return
    await audit.record(ctx.session, actor=ctx.actor, action="handover.create", result="ok", now=ctx.now,
                       args={"handover": h.id, "from": from_staff, "to": to_staff, "scope": scope, "mode": h.mode})
    ctx.reply(ctx.texts("handover_started", id=h.id, from_staff=from_staff, to_staff=to_staff,
                        scope=ctx.texts.label("handover_scope", scope), mode=ctx.texts.label("handover_mode", h.mode)))
