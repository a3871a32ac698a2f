"""``GET /metrics``: what an operator's Prometheus watches (docs/observability.md).

Two kinds of numbers:

- process counters and the callback histogram live in prometheus_client's default registry,
  defined once here at import (several apps in one process, as in the tests, share them);
  points and flow counters are fed by ``storage.tally`` only when a transaction commits, so
  they count what the database kept, not what was tried and rolled back;
- depths (inbox, outbox, broadcast deliveries) are read from the database at each scrape,
  so every process answers the same truth and nothing drifts after a restart.
"""
from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from aiohttp import web
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from bot.appkeys import CHANNELS, CONFIG, DB, DISPATCHER
from bot.http import json_error
from storage import broadcasts, inbox, outbox, points, tally

log = logging.getLogger("siyu.metrics")

# WeCom gives up on a callback after 5 s (wecom.md §1.7): the buckets straddle that.
CALLBACK_SECONDS = Histogram(
    "siyu_wecom_callback_seconds", "Time to answer a WeCom callback (GET verification, POST message).",
    ["method"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
INBOX_UNHANDLED = Gauge("siyu_inbox_unhandled", "Inbound updates stored but not handled yet, by channel.", ["channel"])
INBOX_OLDEST = Gauge("siyu_inbox_oldest_unhandled_seconds", "Age of the oldest inbound update stored but not "
                     "handled yet (a WeCom callback answered, waiting for its handler), by channel; 0 when none.",
                     ["channel"])
OUTBOX_MESSAGES = Gauge("siyu_outbox_messages", "Outbox rows by status (pending and sending: the backlog).", ["status"])
DELIVERIES = Gauge("siyu_broadcast_deliveries", "Broadcast deliveries (one per group and broadcast) by status.",
                   ["status"])
DATABASE_UP = Gauge("siyu_database_up", "1 when this scrape could read the depths from the database, else 0.")
FLOW_TRANSITIONS = Counter("siyu_flow_transitions", "Members entering a state of a flow (a start, an answer, "
                           "a deadline, an operator's move), committed.", ["flow", "state"])
FLOW_TIMEOUTS = Counter("siyu_flow_timeouts", "Flow deadline events fired (a reminder, a close), committed, "
                        "by the state whose deadline passed.", ["flow", "state"])
POINTS_ISSUED = Counter("siyu_points_issued", "Points credited in committed transactions, by ledger kind "
                        "(earn, grant, refund; pending credits count when credited).", ["kind"])
POINTS_SPENT = Counter("siyu_points_spent", "Points taken in committed transactions, by ledger kind "
                       "(spend: redemptions, deduct: operators). Expiry is not counted.", ["kind"])
API_ERRORS = Counter("siyu_api_errors", "Error answers of the REST API (/api/), by error code and HTTP status.",
                     ["code", "status"])

_TALLIED: dict[str, Counter] = {
    tally.POINTS_ISSUED: POINTS_ISSUED, tally.POINTS_SPENT: POINTS_SPENT,
    tally.FLOW_TRANSITIONS: FLOW_TRANSITIONS, tally.FLOW_TIMEOUTS: FLOW_TIMEOUTS,
}
OUTBOX_STATUSES = (outbox.PENDING, outbox.SENDING, outbox.DELIVERED, outbox.FAILED, outbox.CANCELLED, outbox.HELD,
                   outbox.AWAITING_OWNER, outbox.MERGED)
DELIVERY_STATUSES = (broadcasts.PLANNED, broadcasts.QUEUED, broadcasts.AWAITING_OWNER, broadcasts.DELIVERED,
                     broadcasts.FAILED, broadcasts.EXPIRED, broadcasts.SKIPPED, broadcasts.CANCELLED)

# Every ledger kind from the first scrape, at 0: a rate() needs the series before the first point.
for _kind in (points.EARN, points.GRANT, points.REFUND):
    POINTS_ISSUED.labels(_kind)
for _kind in (points.SPEND, points.DEDUCT):
    POINTS_SPENT.labels(_kind)


def _count_committed(counts: Mapping[tuple[str, ...], float]) -> None:
    for (name, *labels), amount in counts.items():
        metric = _TALLIED.get(name)
        if metric is not None:
            metric.labels(*labels).inc(amount)


tally.subscribe(_count_committed)


def api_error(code: str, status: int) -> None:
    """Count an error answer of the REST API."""
    API_ERRORS.labels(code, str(status)).inc()


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant time: how much of a guess matched does not show in the answer's timing. Bytes that
    # are not UTF-8 stay as aiohttp decoded them (surrogates): a wrong token, not a crash.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"),
                                                              token.encode())


def _set(gauge: Gauge, known: tuple[str, ...], counts: Mapping[str, float]) -> None:
    """Known labels at 0 and the counts found; labels gone since the last scrape disappear."""
    gauge.clear()
    for label in known:
        gauge.labels(label).set(0)
    for label, n in counts.items():
        gauge.labels(label).set(n)


async def _read_depths(app: web.Application) -> None:
    try:
        async with app[DB].read() as session:
            waiting = await inbox.unhandled_counts(session)
            oldest = await inbox.oldest_unhandled(session) if waiting else {}
            queued = await outbox.counts_by_status(session)
            deliveries = await broadcasts.delivery_counts(session)
    except Exception as exc:
        # The process counters still answer; stale depths would mislead, so they go.
        log.warning("metrics: cannot read the database: %s", exc)
        for gauge in (INBOX_UNHANDLED, INBOX_OLDEST, OUTBOX_MESSAGES, DELIVERIES):
            gauge.clear()
        DATABASE_UP.set(0)
        return
    # No await from here to the encoding: a concurrent scrape cannot interleave its values.
    channels, now = app[CHANNELS], app[DISPATCHER].clock.now()
    _set(INBOX_UNHANDLED, tuple(channels), waiting)
    # A clock a little behind the database's (another process stored it) is no negative age.
    _set(INBOX_OLDEST, tuple(channels), {c: max(0.0, (now - at).total_seconds()) for c, at in oldest.items()})
    _set(OUTBOX_MESSAGES, OUTBOX_STATUSES, queued)
    _set(DELIVERIES, DELIVERY_STATUSES, deliveries)
    DATABASE_UP.set(1)


async def serve(request: web.Request) -> web.Response:
    """The default registry in the format the scraper asks for (``Accept``), after reading the
    depths; 401 without ``[metrics] token`` when one is set."""
    token = request.app[CONFIG].metrics.token
    if token and not _authorized(request, token):
        answer = json_error(401, "send Authorization: Bearer <token> with [metrics] token")
        answer.headers["WWW-Authenticate"] = 'Bearer realm="siyu metrics"'
        return answer
    await _read_depths(request.app)
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(REGISTRY), headers={"Content-Type": content_type})
