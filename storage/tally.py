"""Counts of what committed transactions did, for whoever watches (``bot.metrics``).

Code inside a transaction calls ``add`` (points credited, a flow moved); subscribers get the
counts once the transaction commits, and never for one rolled back. A savepoint rolled back
(``begin_nested``: a redemption refused after its spend, a command's usage error) takes back
what was added inside it. So a counter fed from here counts what the database kept, not what
was tried: a batch replayed update by update after a failure is not counted twice.

The storage layer imports nothing from the bot (DESIGN §1): the bot subscribes here.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger("siyu.tally")

# The names counted (labels in the order given to ``add``).
POINTS_ISSUED = "points_issued"  # (kind: earn, grant, refund), amount: points
POINTS_SPENT = "points_spent"  # (kind: spend, deduct), amount: points
FLOW_TRANSITIONS = "flow_transitions"  # (flow, state entered)
FLOW_TIMEOUTS = "flow_timeouts"  # (flow, state whose deadline fired)

Key = tuple[str, ...]  # (name, *labels)
Subscriber = Callable[[Mapping[Key, float]], None]

_COUNTS = "siyu.tally"  # Session.info: the open transaction's counts
_SAVEPOINTS = "siyu.tally.savepoints"  # Session.info: counts as they were when each savepoint began
_subscribers: list[Subscriber] = []


def add(session: AsyncSession | Session, name: str, *labels: str, amount: float = 1) -> None:
    """Count ``amount`` of ``name`` for the transaction ``session`` is in."""
    counts: dict[Key, float] = session.info.setdefault(_COUNTS, Counter())
    key = (name, *labels)
    counts[key] = counts.get(key, 0) + amount


def subscribe(callback: Subscriber) -> None:
    """Call ``callback`` with the counts of every transaction that commits (and counted any)."""
    if callback not in _subscribers:
        _subscribers.append(callback)


@event.listens_for(Session, "after_transaction_create")
def _savepoint_begun(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested and _COUNTS in session.info:
        session.info.setdefault(_SAVEPOINTS, {})[transaction] = Counter(session.info[_COUNTS])


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous: SessionTransaction) -> None:
    if not previous.nested:
        session.info.pop(_COUNTS, None)
        session.info.pop(_SAVEPOINTS, None)
        return
    before: Counter[Key] | None = session.info.get(_SAVEPOINTS, {}).pop(previous, None)
    if _COUNTS in session.info:
        session.info[_COUNTS] = before if before is not None else Counter()


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the transaction goes on
        session.info.get(_SAVEPOINTS, {}).pop(session.get_nested_transaction(), None)
        return
    counts: Counter[Key] | None = session.info.pop(_COUNTS, None)
    session.info.pop(_SAVEPOINTS, None)
    if not counts:
        return
    for callback in _subscribers:
        try:
            callback(counts)
        except Exception:  # the transaction is committed: a watcher's bug must not say otherwise
            log.exception("tally subscriber %r failed", callback)
