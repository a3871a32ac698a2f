"""「签到」: once per member per local day, points, streak bonuses, the balance."""
from __future__ import annotations

from bot import filters, periods
from bot.config import Config
from bot.context import Context
from bot.router import Keyword, Router
from handlers.lifecycle.services import after_signin
from handlers.points.services import Credit, celebrate, daily_cap, earn, over_cap
from handlers.signin.config import SIGNIN
from storage import points, signins
from storage.campaigns import CHAT, PAGE


def router(config: Config) -> Router:
    r = Router("signin")
    settings = config[SIGNIN]

    @r.message(filters.Text(settings.keyword), keyword=Keyword(settings.keyword, "signin_about"))
    async def sign_in(ctx: Context) -> None:
        day = periods.local_day(ctx.now, ctx.zone)
        member = ctx.member.id
        streak = await signins.sign_in(ctx.session, member, day, points=settings.daily_points, now=ctx.now,
                                       via=PAGE if ctx.update.page else CHAT)
        if streak is None:
            ctx.reply(ctx.texts("signin_already", streak=await signins.streak_on(ctx.session, member, day),
                                balance=await points.balance(ctx.session, member)))
            return
        await after_signin(ctx)  # the day that reaches a stage's sign-in days raises it at once
        extra = settings.streak_bonus.get(str(streak), 0)
        if await over_cap(ctx, settings.daily_points + extra):
            # The sign-in counts (the streak goes on); the points would pass the daily cap.
            ctx.reply(ctx.texts("signin_capped", streak=streak, cap=daily_cap(ctx),
                                balance=await points.balance(ctx.session, member)))
            return
        # The ledger keys are stored: they keep their first name ("checkin"), so a sign-in
        # credited before an upgrade is never credited again after it.
        earned = await earn(ctx, [
            Credit(settings.daily_points, f"checkin:{member}:{day}", "每日签到"),
            Credit(extra, f"checkin-streak:{member}:{day}", f"连续签到 {streak} 天"),
        ])
        bonus = ctx.texts("signin_bonus", days=streak, extra=extra) if extra else ""
        ctx.reply(ctx.texts("signin_done", points=settings.daily_points, bonus=bonus, streak=streak,
                            balance=earned.balance))
        await celebrate(ctx, earned)

    return r
