"""Crediting what a member earned (sign-in, tasks) under the rules of ``[points]``: the daily
cap, expiry, pending periods; then levels follow. Other features earn through this."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot import periods
from bot.context import Context
from handlers.levels.services import after_credit
from handlers.points.config import POINTS
from storage import points

__all__ = ["Credit", "Earned", "celebrate", "earn", "earn_each", "over_cap", "over_caps"]


@dataclass(frozen=True, slots=True)
class Credit:
    amount: int
    key: str  # idempotency key: a retried update credits nothing twice
    reason: str


@dataclass(frozen=True, slots=True)
class Earned:
    points: int  # credited now (0 for a retry)
    balance: int
    pending: int
    lifetime: int = 0
    member_id: int | None = None


def daily_cap(ctx: Context) -> int:
    """``[points] daily_cap`` (0: none), for the answer that names it."""
    return ctx.config[POINTS].daily_cap


async def over_cap(ctx: Context, amount: int) -> bool:
    """True if ``amount`` more would pass the member's ``[points] daily_cap`` today."""
    cap = ctx.config[POINTS].daily_cap
    if not cap:
        return False
    since, _ = periods.day_of(ctx.now, ctx.zone)
    return await points.earned_since(ctx.session, ctx.member.id, since) + amount > cap


async def earn(ctx: Context, credits: list[Credit], *, member_id: int | None = None, pending_days: int = 0,
               issuer: str | None = None) -> Earned:
    """Credit the sender (or ``member_id``). Points expire after ``[points] expire_after_days``
    and are pending ``pending_days`` first. The caller checks the cap (``over_cap``) before, so
    it can answer instead, and calls ``celebrate`` after its answer."""
    member = member_id if member_id is not None else ctx.member.id
    settings = ctx.config[POINTS]
    expires_at = ctx.now + timedelta(days=settings.expire_after_days) if settings.expire_after_days else None
    available_at = ctx.now + timedelta(days=pending_days) if pending_days else None
    earned, posted = 0, None
    for credit in credits:
        if credit.amount <= 0:
            continue
        posted = await points.credit(ctx.session, member, credit.amount, key=credit.key, reason=credit.reason,
                                     now=ctx.now, expires_at=expires_at, available_at=available_at, issuer=issuer)
        earned += credit.amount if posted.done else 0
    if posted is None:
        return Earned(0, await points.balance(ctx.session, member), await points.pending(ctx.session, member))
    return Earned(earned, posted.balance, await points.pending(ctx.session, member) if pending_days else 0,
                  posted.lifetime, member)


async def over_caps(ctxs: list[Context], amounts: list[int]) -> list[bool]:
    """``over_cap`` for the senders of a batch (one statement for all)."""
    cap = ctxs[0].config[POINTS].daily_cap if ctxs else 0
    if not cap:
        return [False] * len(ctxs)
    since, _ = periods.day_of(ctxs[0].now, ctxs[0].zone)
    earned = await points.earned_since_many(ctxs[0].session, [c.member.id for c in ctxs], since)
    return [earned[c.member.id] + amount > cap for c, amount in zip(ctxs, amounts, strict=True)]


async def earn_each(ctxs: list[Context], credits: list[list[Credit]], *, pending_days: int = 0) -> list[Earned]:
    """``earn`` for the senders of a batch, each their ``credits`` (one member per context): the
    same rules, a few statements for all (``points.credit_many``)."""
    if not ctxs:
        return []
    ctx = ctxs[0]
    settings = ctx.config[POINTS]
    expires_at = ctx.now + timedelta(days=settings.expire_after_days) if settings.expire_after_days else None
    available_at = ctx.now + timedelta(days=pending_days) if pending_days else None
    lines = [points.Line(c.member.id, credit.amount, credit.key, credit.reason, expires_at, available_at)
             for c, given in zip(ctxs, credits, strict=True) for credit in given]
    totals = await points.credit_many(ctx.session, lines, now=ctx.now)
    missing = [c.member.id for c in ctxs if c.member.id not in totals]  # nothing to credit: read as is
    balances = await points.balances(ctx.session, missing) if missing else {}
    earned = []
    for c in ctxs:
        t = totals.get(c.member.id)
        if t is None:
            earned.append(Earned(0, balances[c.member.id], 0))
        else:
            earned.append(Earned(t.credited, t.balance, t.pending if pending_days else 0, t.lifetime, c.member.id))
    return earned


async def celebrate(ctx: Context, earned: Earned) -> None:
    """A level-up the credit brought: told after the answer about the points."""
    if earned.points:
        await after_credit(ctx, earned.lifetime - earned.points, earned.lifetime, member_id=earned.member_id)
