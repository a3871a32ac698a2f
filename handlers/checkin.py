"""Daily sign-in (签到): once per member per local day, points, streak bonuses, the balance."""
from __future__ import annotations

from bot import filters
from bot.config import Config
from bot.context import Context
from bot.router import Router
from storage import checkins, points


def router(config: Config) -> Router:
    r = Router("checkin")
    settings = config.checkin

    @r.message(filters.Text(settings.keyword))
    async def sign_in(ctx: Context) -> None:
        from zoneinfo import ZoneInfo

        day = ctx.now.astimezone(ZoneInfo(settings.timezone)).date()
        member = ctx.member.id
        streak = await checkins.sign_in(ctx.session, member, day, points=settings.daily_points, now=ctx.now)
        if streak is None:
            ctx.reply(ctx.texts("checkin_already", streak=await checkins.streak_on(ctx.session, member, day),
                                balance=await points.balance(ctx.session, member)))
            return
        if settings.daily_points:
            balance = (await points.credit(ctx.session, member, settings.daily_points, key=f"checkin:{member}:{day}",
                                           reason="每日签到", now=ctx.now)).balance
        else:
            balance = await points.balance(ctx.session, member)
        extra = settings.streak_bonus.get(str(streak), 0)
        if extra:
            balance = (await points.credit(ctx.session, member, extra, key=f"checkin-streak:{member}:{day}",
                                           reason=f"连续签到 {streak} 天", now=ctx.now)).balance
        bonus = ctx.texts("checkin_bonus", days=streak, extra=extra) if extra else ""
        ctx.reply(ctx.texts("checkin_done", points=settings.daily_points, bonus=bonus, streak=streak, balance=balance))

    return r
