"""「签到」: once per member per local day, points, streak bonuses, the balance.

Sign-ins come in rushes (the morning topic lands in every group at once), so the route has a
batch stage: the sign-ins of a group-commit batch are a few multi-row statements for all of
them (check-ins, lifecycle counts, ledger entries, lots, balances), not a few per member. One
sign-in handled alone goes through the same code with a batch of one.
"""
from __future__ import annotations

from bot import filters, periods
from bot.config import Config
from bot.context import Context
from bot.router import Keyword, Router
from handlers.lifecycle.services import after_signins, signins_since
from handlers.points.services import Credit, celebrate, daily_cap, earn_each, over_caps
from handlers.signin.config import SIGNIN, SigninConfig
from handlers.signin.services import acknowledge_in_group, digest_window
from storage import points, signins
from storage.campaigns import CHAT, PAGE


def router(config: Config) -> Router:
    r = Router("signin")
    settings = config[SIGNIN]

    async def sign_in_all(ctxs: list[Context]) -> None:
        await _sign_in(ctxs, settings)

    @r.message(filters.Text(settings.keyword), keyword=Keyword(settings.keyword, "signin_about"), batch=sign_in_all)
    async def sign_in(ctx: Context) -> None:
        await _sign_in([ctx], settings)

    return r


async def _sign_in(ctxs: list[Context], settings: SigninConfig) -> None:
    """Sign in the senders of ``ctxs`` (one update per member: the member lock keeps a member's
    updates out of one batch; a second one would be answered as already signed in)."""
    first = ctxs[0]
    day = periods.local_day(first.now, first.zone)
    via = {c.member.id: PAGE if c.update.page else CHAT for c in ctxs}  # the member center's button: page
    signed = await signins.sign_in_many(first.session, via, day, points=settings.daily_points, now=first.now,
                                        count_since=signins_since(first))
    streaks = {m: (s.streak, s.new) for m, s in signed.items()}
    seen: set[int] = set()
    fresh: list[Context] = []
    repeat: list[Context] = []
    for ctx in ctxs:
        (fresh if signed[ctx.member.id].new and ctx.member.id not in seen else repeat).append(ctx)
        seen.add(ctx.member.id)
    # The day that reaches a stage's sign-in days raises it at once.
    await after_signins(fresh, {c.member.id: signed[c.member.id].days for c in fresh})
    extras = [settings.streak_bonus.get(str(streaks[c.member.id][0]), 0) for c in fresh]
    capped = await over_caps(fresh, [settings.daily_points + extra for extra in extras])
    paid = [(c, extra) for c, extra, over in zip(fresh, extras, capped, strict=True) if not over]
    # The ledger keys are stored: they keep their first name ("checkin"), so a sign-in
    # credited before an upgrade is never credited again after it.
    earned = await earn_each([c for c, _ in paid], [[
        Credit(settings.daily_points, f"checkin:{c.member.id}:{day}", "每日签到"),
        Credit(extra, f"checkin-streak:{c.member.id}:{day}", f"连续签到 {streaks[c.member.id][0]} 天"),
    ] for c, extra in paid])
    unpaid = [c for c, over in zip(fresh, capped, strict=True) if over] + repeat
    balances = await points.balances(first.session, [c.member.id for c in unpaid]) if unpaid else {}
    results = {id(c): e for (c, _), e in zip(paid, earned, strict=True)}
    extra_of = {id(c): extra for c, extra in paid}
    for ctx in ctxs:  # the answers, in the batch's order
        member = ctx.member.id
        streak = streaks[member][0]
        if ctx in repeat:
            ctx.reply(ctx.texts("signin_already", streak=streak, balance=balances[member]))
        elif id(ctx) not in results:
            # The sign-in counts (the streak goes on); the points would pass the daily cap.
            ctx.reply(ctx.texts("signin_capped", streak=streak, cap=daily_cap(ctx), balance=balances[member]))
        else:
            done, extra = results[id(ctx)], extra_of[id(ctx)]
            bonus = ctx.texts("signin_bonus", days=streak, extra=extra) if extra else ""
            text = ctx.texts("signin_done", points=settings.daily_points, bonus=bonus, streak=streak,
                             balance=done.balance)
            if digest_window(ctx) and not extra:
                item = (ctx.texts("signin_digest_item", name=ctx.display_name, streak=streak,
                                  points=settings.daily_points) if streak > 1
                        else ctx.texts("signin_digest_item_first", name=ctx.display_name,
                                       points=settings.daily_points))
                acknowledge_in_group(ctx, text, item=item, head=ctx.texts("signin_digest_head"), kind="signin")
            else:  # one-to-one, or a streak milestone: its own line at once
                ctx.reply(text)
            await celebrate(ctx, done)
