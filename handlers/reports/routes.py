"""``/stats``: the community's numbers, today and the last 7 days."""
from __future__ import annotations

import handlers.reports.stats as stats
from bot.context import Context
from bot.router import Router

router = Router("reports")


@router.command("stats", role="viewer")
async def stats_command(ctx: Context) -> None:
    """查看社群数据：今天和最近 7 天"""
    ctx.reply(await stats.summary(ctx.session, ctx.config, ctx.texts, ctx.now))
