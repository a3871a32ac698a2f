"""The delivery worker: what happens to a committed outbox row once a channel tries to send it.

Every test drives ``OutboxWorker.deliver_once`` by hand on a FakeClock: no background loop, and
no real waiting except the one send that must run into the (0.2 s) timeout.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

import bot.settlements
from bot.channels.base import Capability, Channel, DeliveryError
from bot.config import OutboxConfig
from bot.outbox import OutboxWorker
from bot.settlements import MAX_BACKOFF_S, backoff
from bot.testing import FakeClock
from storage import outbox
from storage.engine import Database
from storage.models import OutboxMessage
from storage.outbox import Claimed, Outgoing


class ScriptedChannel(Channel):
    """Records what it sends; told per text to fail (once or always) or to hang."""

    name = "test"
    capabilities = frozenset({Capability.SEND_GROUP, Capability.SEND_PRIVATE})

    def __init__(self) -> None:
        self.sent: list[Claimed] = []
        self.calls: list[str] = []
        self._next: dict[str, deque[BaseException]] = defaultdict(deque)
        self._always: dict[str, BaseException] = {}
        self.hang: set[str] = set()
        # Run while the send of a text is in flight (another worker acting meanwhile).
        self.during: dict[str, Callable[[], Awaitable[None]]] = {}

    def fail_next(self, text: str, *errors: BaseException) -> None:
        self._next[text].extend(errors)

    def fail_always(self, text: str, error: BaseException) -> None:
        self._always[text] = error

    async def send(self, message: Claimed) -> None:
        self.calls.append(message.text)
        if (hook := self.during.pop(message.text, None)) is not None:
            await hook()
        if message.text in self.hang:
            await asyncio.Event().wait()
        if self._next[message.text]:
            raise self._next[message.text].popleft()
        if message.text in self._always:
            raise self._always[message.text]
        self.sent.append(message)


@pytest.fixture
def channel() -> ScriptedChannel:
    return ScriptedChannel()


def make_worker(db: Database, clock: FakeClock, *channels: Channel, **config: float | int) -> OutboxWorker:
    settings: dict[str, float | int] = dict(batch_size=10, max_attempts=3, lease_s=30.0, send_timeout_s=1.0,
                                            poll_interval_s=0.1)
    settings.update(config)
    return OutboxWorker(db, {c.name: c for c in channels}, clock=clock, config=OutboxConfig(**settings))


async def enqueue(db: Database, clock: FakeClock, *messages: Outgoing) -> list[int]:
    async with db.transaction() as s:
        return await outbox.enqueue(s, messages, now=clock.now())


async def row(db: Database, id_: int) -> OutboxMessage:
    async with db.read() as s:
        return (await s.execute(select(OutboxMessage).where(OutboxMessage.id == id_))).scalar_one()


async def delivered_texts(db: Database, **kw: str) -> list[str]:
    async with db.read() as s:
        return [m.text for m in await outbox.delivered(s, channel="test", **kw)]


async def test_delivered_message_is_marked_and_listed(db: Database, clock: FakeClock, channel: ScriptedChannel) -> None:
    worker = make_worker(db, clock, channel)
    ids = await enqueue(db, clock, Outgoing(channel="test", chat="g1", text="hello group"),
                        Outgoing(channel="test", to="u1", text="hello you"))
    assert await worker.deliver_once() == 2

    assert [(m.id, m.chat, m.to, m.text, m.attempts) for m in channel.sent] == [
        (ids[0], "g1", None, "hello group", 1), (ids[1], None, "u1", "hello you", 1),
    ]
    for id_ in ids:
        r = await row(db, id_)
        assert (r.status, r.attempts, r.delivered_at, r.claimed_until, r.last_error) == (
            "delivered", 1, clock.now(), None, None)
    assert await delivered_texts(db) == ["hello group", "hello you"]
    assert await delivered_texts(db, chat="g1") == ["hello group"]
    assert await delivered_texts(db, to="u1") == ["hello you"]

    # Nothing is sent twice.
    clock.advance(3600)
    assert await worker.deliver_once() == 0
    assert len(channel.sent) == 2


async def test_nothing_due_does_nothing(db: Database, clock: FakeClock, channel: ScriptedChannel) -> None:
    worker = make_worker(db, clock, channel)
    assert await worker.deliver_once() == 0
    assert channel.calls == []


async def test_batch_size_bounds_one_pass(db: Database, clock: FakeClock, channel: ScriptedChannel) -> None:
    worker = make_worker(db, clock, channel, batch_size=2)
    await enqueue(db, clock, *(Outgoing(channel="test", to="u1", text=f"m{i}") for i in range(5)))
    assert [await worker.deliver_once() for _ in range(4)] == [2, 2, 1, 0]
    assert [m.text for m in channel.sent] == ["m0", "m1", "m2", "m3", "m4"]  # in the order written


async def test_retryable_failure_is_rescheduled_with_backoff(
    db: Database, clock: FakeClock, channel: ScriptedChannel,
) -> None:
    worker = make_worker(db, clock, channel)
    [id_] = await enqueue(db, clock, Outgoing(channel="test", to="u1", text="hi"))
    channel.fail_next("hi", DeliveryError("502 from the platform", retryable=True))
    failed_at = clock.now()
    assert await worker.deliver_once() == 1

    r = await row(db, id_)
    assert (r.status, r.attempts, r.last_error, r.claimed_until) == ("pending", 1, "502 from the platform", None)
    # backoff(1): 2 s with ±25% jitter.
    assert failed_at + timedelta(seconds=1.5) <= r.not_before <= failed_at + timedelta(seconds=2.5)
    assert await delivered_texts(db) == []

    # Not due until the clock passes not_before.
    clock.advance(1.4)
    assert await worker.deliver_once() == 0
    assert channel.calls == ["hi"]

    clock.set(r.not_before)
    assert await worker.deliver_once() == 1
    assert channel.calls == ["hi", "hi"]
    r = await row(db, id_)
    assert (r.status, r.attempts, r.last_error) == ("delivered", 2, None)
    assert await delivered_texts(db) == ["hi"]


async def test_retry_after_from_the_channel_is_honoured(
    db: Database, clock: FakeClock, channel: ScriptedChannel,
) -> None:
    worker = make_worker(db, clock, channel)
    [id_] = await enqueue(db, clock, Outgoing(channel="test", chat="g1", text="hi"))
    channel.fail_next("hi", DeliveryError("rate limited", retryable=True, retry_after=60.0))
    start = clock.now()
    await worker.deliver_once()

    r = await row(db, id_)
    assert (r.status, r.last_error, r.not_before) == ("pending", "rate limited", start + timedelta(seconds=60))

    clock.advance(59)  # far past any backoff(1), still before the channel's word
    assert await worker.deliver_once() == 0
    clock.advance(1)
    assert await worker.deliver_once() == 1
    assert (await row(db, id_)).status == "delivered"
    assert channel.calls == ["hi", "hi"]


async def test_non_retryable_failure_fails_at_once(db: Database, clock: FakeClock, channel: ScriptedChannel) -> None:
    worker = make_worker(db, clock, channel, max_attempts=5)
    [id_] = await enqueue(db, clock, Outgoing(channel="test", to="u1", text="hi"))
    channel.fail_next("hi", DeliveryError("the member deleted the bot", retryable=False))
    assert await worker.deliver_once() == 1

    r = await row(db, id_)
    assert (r.status, r.attempts, r.last_error, r.delivered_at) == ("failed", 1, "the member deleted the bot", None)
    clock.advance(86400)
    assert await worker.deliver_once() == 0
    assert channel.calls == ["hi"]
    async with db.read() as s:
        assert await outbox.counts_by_status(s) == {"failed": 1}


async def test_gives_up_after_max_attempts(db: Database, clock: FakeClock, channel: ScriptedChannel) -> None:
    worker = make_worker(db, clock, channel, max_attempts=3)
    [id_] = await enqueue(db, clock, Outgoing(channel="test", to="u1", text="hi"))
    channel.fail_always("hi", DeliveryError("still down", retryable=True))

    for attempt in (1, 2):
        assert await worker.deliver_once() == 1
        r = await row(db, id_)
        assert (r.status, r.attempts) == ("pending", attempt)
        clock.advance(MAX_BACKOFF_S * 1.25 + 1)

    assert await worker.deliver_once() == 1
    r = await row(db, id_)
    assert (r.status, r.attempts, r.last_error) == ("failed", 3, "still down")

    for _ in range(3):
        clock.advance(3600)
        assert await worker.deliver_once() == 0
    assert channel.calls == ["hi"] * 3


async def test_hanging_channel_times_out_and_is_retried(
    db: Database, clock: FakeClock, channel: ScriptedChannel,
) -> None:
    worker = make_worker(db, clock, channel, send_timeout_s=0.2)
    ids = await enqueue(db, clock, Outgoing(channel="test", to="u1", text="stuck"),
                        Outgoing(channel="test", to="u2", text="fine"))
    channel.hang.add("stuck")
    assert await asyncio.wait_for(worker.deliver_once(), timeout=5) == 2

    stuck, fine = await row(db, ids[0]), await row(db, ids[1])
    assert (stuck.status, stuck.attempts) == ("pending", 1)
    assert stuck.last_error is not None and "0.2s" in stuck.last_error
    assert stuck.not_before > clock.now()
    assert fine.status == "delivered"  # the hang held up nothing but itself

    channel.hang.clear()
    clock.advance(10)
    assert await worker.deliver_once() == 1
    assert (await row(db, ids[0])).status == "delivered"
    assert await delivered_texts(db) == ["fine", "stuck"]  # in the order they went out


async def test_message_for_unconfigured_channel_fails_naming_it(
    db: Database, clock: FakeClock, channel: ScriptedChannel,
) -> None:
    worker = make_worker(db, clock, channel)
    ids = await enqueue(db, clock, Outgoing(channel="wecom", chat="wrXYZ", text="to wecom"),
                        Outgoing(channel="test", chat="g1", text="to test"))
    assert await worker.deliver_once() == 2

    lost = await row(db, ids[0])
    assert lost.status == "failed"
    assert lost.last_error is not None and "wecom" in lost.last_error
    assert (await row(db, ids[1])).status == "delivered"
    assert channel.calls == ["to test"]
    clock.advance(3600)
    assert await worker.deliver_once() == 0


async def test_channel_bug_does_not_stop_the_batch(db: Database, clock: FakeClock, channel: ScriptedChannel) -> None:
    worker = make_worker(db, clock, channel)
    ids = await enqueue(db, clock, *(Outgoing(channel="test", chat="g1", text=t) for t in ("a", "bad", "c")))
    channel.fail_next("bad", RuntimeError("channel bug"))
    assert await worker.deliver_once() == 3

    assert [m.text for m in channel.sent] == ["a", "c"]
    assert await delivered_texts(db, chat="g1") == ["a", "c"]
    bad = await row(db, ids[1])
    # Not lost: kept for another attempt, with the exception on the row.
    assert (bad.status, bad.attempts) == ("pending", 1)
    assert bad.last_error is not None and "RuntimeError" in bad.last_error and "channel bug" in bad.last_error

    clock.advance(10)
    assert await worker.deliver_once() == 1
    assert await delivered_texts(db, chat="g1") == ["a", "c", "bad"]  # in the order they went out


async def test_rows_of_a_dead_worker_are_delivered_after_the_lease(
    db: Database, clock: FakeClock, channel: ScriptedChannel,
) -> None:
    worker = make_worker(db, clock, channel, lease_s=30.0)
    [id_] = await enqueue(db, clock, Outgoing(channel="test", to="u1", text="orphan"))
    # Another worker claimed the row and died before settling it.
    async with db.transaction() as s:
        await outbox.claim_due(s, now=clock.now(), limit=10, lease=timedelta(seconds=30))

    clock.advance(29)
    assert await worker.deliver_once() == 0
    clock.advance(2)
    assert await worker.deliver_once() == 1
    r = await row(db, id_)
    assert (r.status, r.attempts) == ("delivered", 2)
    assert [m.text for m in channel.sent] == ["orphan"]


class OtherProcessChannel(ScriptedChannel):
    """The same channel as seen by a second delivering process."""
async def test_slow_worker_does_not_undo_another_workers_delivery(db: Database, clock: FakeClock) -> None:
    slow, fast = ScriptedChannel(), OtherProcessChannel()
    worker_a = make_worker(db, clock, slow, lease_s=30.0)
    worker_b = make_worker(db, clock, fast, lease_s=30.0)
    [id_] = await enqueue(db, clock, Outgoing(channel="test", to="u1", text="hi"))

    async def meanwhile() -> None:
        clock.advance(31)  # A's send hangs past its lease; B (another process) reclaims and delivers
        assert await worker_b.deliver_once() == 1

    slow.during["hi"] = meanwhile
    slow.fail_next("hi", DeliveryError("no answer within 10s"))
    await worker_a.deliver_once()

    assert [m.text for m in fast.sent] == ["hi"]
    assert (await row(db, id_)).status == "delivered"
    clock.advance(3600)
    await worker_a.deliver_once()
    await worker_b.deliver_once()
    assert len(slow.sent) + len(fast.sent) == 1  # the member got it once
async def test_rows_whose_lease_ran_out_mid_batch_are_not_sent_twice(db: Database, clock: FakeClock) -> None:
    slow, other = ScriptedChannel(), OtherProcessChannel()
    # One send in flight at a time: m2 waits for m1, and by then the lease is gone.
    worker_a = make_worker(db, clock, slow, lease_s=30.0, send_timeout_s=10.0, concurrency=1)
    worker_b = make_worker(db, clock, other, lease_s=30.0, send_timeout_s=10.0)
    await enqueue(db, clock, *(Outgoing(channel="test", to="u1", text=t) for t in ("m1", "m2")))

    async def meanwhile() -> None:
        clock.advance(31)  # m1 is slow (timeouts, a rate limit...): the whole batch's lease runs out
        await worker_b.deliver_once()

    slow.during["m1"] = meanwhile
    await worker_a.deliver_once()

    # m1 was in flight when B took over (a duplicate is unavoidable there); m2 was not started.
    sends_of_m2 = [m for m in slow.sent + other.sent if m.text == "m2"]
    assert len(sends_of_m2) == 1


def test_backoff_grows_and_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.settlements.random, "uniform", lambda a, b: 1.0)
    assert [backoff(n) for n in range(1, 10)] == [2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert backoff(20) == backoff(50) == MAX_BACKOFF_S == 300

    monkeypatch.setattr(bot.settlements.random, "uniform", lambda a, b: b)
    assert max(backoff(n) for n in range(1, 51)) == 300 * 1.25
    monkeypatch.setattr(bot.settlements.random, "uniform", lambda a, b: a)
    assert backoff(1) == 2 * 0.75


def test_backoff_jitter_stays_in_bounds() -> None:
    small = [backoff(1) for _ in range(500)]
    assert all(1.5 <= d <= 2.5 for d in small)
    assert len(set(small)) > 1  # jittered, so workers retrying together spread out
    capped = [backoff(n) for n in range(9, 51) for _ in range(20)]
    assert all(300 * 0.75 <= d <= 300 * 1.25 for d in capped)
    assert min(backoff(3) for _ in range(200)) > max(backoff(1) for _ in range(200))  # it grows


async def test_a_stopping_worker_finishes_the_sends_under_way_and_hands_back_the_rest(
    db: Database, clock: FakeClock, channel: ScriptedChannel,
) -> None:
    worker = make_worker(db, clock, channel, concurrency=1)
    ids = await enqueue(db, clock, *(Outgoing(channel="test", chat=f"g{i}", text=f"m{i}") for i in range(5)))

    stopping: list[asyncio.Task[None]] = []

    async def sigterm_arrives() -> None:  # the app's shutdown begins while m0 is being sent
        stopping.append(asyncio.ensure_future(worker.stop()))

    channel.during["m0"] = sigterm_arrives
    worker.start()
    while not stopping:
        await asyncio.sleep(0.01)
    await stopping[0]
    statuses = [(await row(db, i)).status for i in ids]
    assert statuses == ["delivered", "pending", "pending", "pending", "pending"]  # none left claimed
    assert [m.text for m in channel.sent] == ["m0"]


async def test_each_row_is_marked_as_its_send_returns_not_when_the_pass_ends(
    db: Database, clock: FakeClock, channel: ScriptedChannel,
) -> None:
    """A kill mid-pass sends again only what was in flight: what went out is already marked."""
    worker = make_worker(db, clock, channel, concurrency=2)
    ids = await enqueue(db, clock, *(Outgoing(channel="test", chat=f"g{n % 3}", text=f"m{n}") for n in range(9)))
    unmarked_while_sending: list[int] = []

    async def count_unmarked() -> None:
        sent = {m.id for m in channel.sent}
        statuses = [(await row(db, i)).status for i in sent]
        unmarked_while_sending.append(sum(status != "delivered" for status in statuses))

    for n in range(3, 9):
        channel.during[f"m{n}"] = count_unmarked
    assert await worker.deliver_once() == 9
    assert [(await row(db, i)).status for i in ids] == ["delivered"] * 9
    # Sends already returned were marked before later sends began: at most the other slot's
    # send (returned, its mark being written) is unmarked at any moment.
    assert len(unmarked_while_sending) == 6 and max(unmarked_while_sending) <= 1


def test_a_wake_up_set_for_later_comes_on_the_production_loop(db: Database) -> None:
    """``siyu run`` serves on uvloop, whose timer handles differ from asyncio's: rows that wait
    for a digest window still wake the worker when it ends, and a later wake-up asked for
    meanwhile neither raises (it would fail the request whose commit asked) nor delays it."""
    uvloop = pytest.importorskip("uvloop")
    clock = FakeClock()
    worker = OutboxWorker(db, {}, clock=clock, config=OutboxConfig())

    async def woken() -> float:
        # Due within a millisecond: uvloop makes that a plain handle, with no deadline.
        worker.wake(at=clock.now() + timedelta(microseconds=100))
        await asyncio.wait_for(worker._wake.wait(), 2)
        worker._wake.clear()
        started = asyncio.get_running_loop().time()
        worker.wake(at=clock.now() + timedelta(seconds=0.2))
        worker.wake(at=clock.now() + timedelta(seconds=5))  # later: the earlier one stands
        worker.wake(at=clock.now() + timedelta(seconds=0.1))  # earlier: it replaces it
        await asyncio.wait_for(worker._wake.wait(), 2)
        return asyncio.get_running_loop().time() - started

    assert 0.05 < uvloop.run(woken()) < 0.19
