"""What other features ask of sign-in: the group digest of confirmations (``[signin]
group_digest_s``), which task check-ins (打卡) share, so a group in a rush hears one message
for the sign-ins and one for the check-ins of each moment instead of a line per member."""
from __future__ import annotations

import math
from datetime import UTC, datetime

from bot.context import Context
from handlers.signin.config import SIGNIN
from storage.outbox import Outgoing

__all__ = ["acknowledge_in_group", "digest_window"]

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
    time and one ``merge`` key, with no read and no shared row to lock; the outbox claims them
    together and sends them as one text, split at the platform's limit (``storage.outbox.merge``).
    A crash before sending leaves the rows pending: nothing is lost, and a group hears at most
    one digest of a kind per window."""
    step = digest_window(ctx)
    assert ctx.update.chat is not None and step > 0
    end = datetime.fromtimestamp(math.ceil(ctx.now.timestamp() / step) * step, UTC)
    ctx.outgoing.append(Outgoing(
        ctx.update.channel, text, chat=ctx.update.chat, update_key=ctx.update.key, not_before=end,
        meta={"merge": f"{kind}:{end.isoformat()}", "part": item, "head": head, "sep": SEPARATOR},
    ))
