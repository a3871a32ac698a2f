"""Daily sign-in (签到): once per member per local day, points, streak bonuses, the balance."""
from __future__ import annotations

from bot import filters
from bot.config import Config
from bot.context import Context
from bot.router import Router
from handlers import levels
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
        extra = settings.streak_bonus.get(str(streak), 0)
        credits = [(amount, key, reason) for amount, key, reason in (
            (settings.daily_points, f"checkin:{member}:{day}", "每日签到"),
            (extra, f"checkin-streak:{member}:{day}", f"连续签到 {streak} 天")) if amount]
        earned = sum(amount for amount, _, _ in credits)
        posted = None
        for amount, key, reason in credits:
            posted = await points.credit(ctx.session, member, amount, key=key, reason=reason, now=ctx.now)
        balance = posted.balance if posted else await points.balance(ctx.session, member)
        bonus = ctx.texts("checkin_bonus", days=streak, extra=extra) if extra else ""
        ctx.reply(ctx.texts("checkin_done", points=settings.daily_points, bonus=bonus, streak=streak, balance=balance))
        if posted is not None:
            await levels.after_credit(ctx, posted.lifetime - earned, posted.lifetime)

    return r
