"""What other surfaces ask of the sign-in: whether it is on and the word that signs in (the
member center's button sends that word through the dispatcher, so a sign-in there is the same
sign-in as in chat: one a day whichever way, the same points, streak and level-up); and the
group digest of confirmations (``[signin] group_digest_s``), which task check-ins (打卡) share,
so a group in a rush hears one message for the sign-ins and one for the check-ins of each
moment instead of a line per member."""
from __future__ import annotations

import math
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config
from bot.context import Context
from handlers.signin.config import SIGNIN, SigninConfig
from storage import signins
from storage.outbox import Outgoing

__all__ = ["SigninConfig", "acknowledge_in_group", "digest_window", "settings", "streak"]


def settings(config: Config) -> SigninConfig | None:
    """``[signin]``, or None when the sign-in is off."""
    found = config[SIGNIN]
    return found if found.enabled else None


async def streak(session: AsyncSession, member_id: int, today: date) -> tuple[int, bool]:
    """The member's streak as of ``today`` and whether they signed in today: yesterday's streak
    still stands until today ends."""
    now = await signins.streak_on(session, member_id, today)
    if now:
        return now, True
    return await signins.streak_on(session, member_id, date.fromordinal(today.toordinal() - 1)), False


# Joins the members named in a group's digest (「今日签到：小王 连续3天 +10、小李 +10」).
SEPARATOR = "、"


def digest_window(ctx: Context) -> float:
    """Seconds a group confirmation of ``ctx`` waits to join a digest; 0: it goes out at once
    (one-to-one, the setting off, or a bot made without the sign-in feature)."""
    if ctx.update.chat is None:
        return 0.0
    try:
        return float(ctx.config[SIGNIN].group_digest_s)
    except AttributeError:  # the app was composed without the sign-in feature
        return 0.0


def acknowledge_in_group(ctx: Context, text: str, *, item: str, head: str, kind: str) -> None:
    """Queue the confirmation ``text`` of a group update to wait for the end of its digest
    window, then go out in one message ``head`` + the ``item`` of every confirmation of that
    group, ``kind`` and window (or ``text`` itself when it is alone there).

    Durable by construction: the confirmation is an ordinary outbox row, committed with what
    it confirms, whose ``not_before`` is the window's end. Windows are fixed slices of the
    clock (every ``group_digest_s`` seconds), so the rows of a group and window share one due
    time, with no read and no shared row to lock; the outbox claims the due rows of a group
    together and sends those of one ``merge`` key (the kind) as one text, split at the
    platform's limit (``storage.outbox_merge``). The key names no window: when a group's rate
    (``[outbox] group_rate_per_min``) holds its digests back, the next one takes in every
    window that waited, so a busy group's backlog shrinks instead of growing. A crash before
    sending leaves the rows pending: nothing is lost, and a group hears at most one digest of a
    kind per window."""
    step = digest_window(ctx)
    assert ctx.update.chat is not None and step > 0
    end = datetime.fromtimestamp(math.ceil(ctx.now.timestamp() / step) * step, UTC)
    ctx.outgoing.append(Outgoing(
        ctx.update.channel, text, chat=ctx.update.chat, update_key=ctx.update.key, not_before=end,
        meta={"merge": kind, "part": item, "head": head, "sep": SEPARATOR},
    ))
