"""Per-member serialization (DESIGN §4): one member's updates one after the other, others not held up."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from bot import filters
from bot.context import Context
from bot.feature import Feature
from bot.locks import KeyedLocks
from bot.router import Router
from bot.testing import SandboxClient, sandbox_app


@dataclass
class Gates:
    """Handlers for "slow-*" texts wait at a gate the test opens; every step is logged."""

    log: list[tuple[str, str]] = field(default_factory=list)
    started: dict[str, asyncio.Event] = field(default_factory=dict)
    release: dict[str, asyncio.Event] = field(default_factory=dict)

    def gate(self, text: str) -> None:
        self.started[text] = asyncio.Event()
        self.release[text] = asyncio.Event()


@pytest.fixture
async def gated(make_config, clock) -> AsyncIterator[tuple[SandboxClient, Gates]]:  # type: ignore[no-untyped-def]
    gates = Gates()
    router = Router("gated")

    @router.message(filters.StartsWith("slow"))
    async def slow(ctx: Context) -> None:
        text = ctx.update.text or ""
        gates.log.append(("start", text))
        gates.started[text].set()
        await gates.release[text].wait()
        gates.log.append(("end", text))
        ctx.reply(f"done {text}")

    @router.message(filters.Text("hello"))
    async def hello(ctx: Context) -> None:
        gates.log.append(("hello", ctx.update.sender))
        ctx.reply("hi")

    gated = Feature("gated", routers=lambda config: [router])
    async with sandbox_app(make_config(features=(gated,)), clock=clock) as bot:
        yield bot, gates


async def _not_set_within(event: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return True
    return False


async def test_two_messages_of_one_member_are_handled_one_after_the_other(gated: tuple[SandboxClient, Gates]) -> None:
    bot, gates = gated
    gates.gate("slow-a")
    gates.gate("slow-b")
    first = asyncio.create_task(bot.say("u1", "slow-a"))
    await gates.started["slow-a"].wait()
    second = asyncio.create_task(bot.say("u1", "slow-b"))
    assert await _not_set_within(gates.started["slow-b"], 0.3), "slow-b started while slow-a was in progress"
    gates.release["slow-a"].set()
    await gates.started["slow-b"].wait()
    gates.release["slow-b"].set()
    assert (await first)[0]["text"] == "done slow-a" and (await second)[0]["text"] == "done slow-b"
    assert gates.log == [("start", "slow-a"), ("end", "slow-a"), ("start", "slow-b"), ("end", "slow-b")]


async def test_a_members_queue_does_not_hold_up_other_members(gated: tuple[SandboxClient, Gates]) -> None:
    bot, gates = gated
    gates.gate("slow-a")
    gates.gate("slow-b")
    first = asyncio.create_task(bot.say("u1", "slow-a"))
    await gates.started["slow-a"].wait()
    second = asyncio.create_task(bot.say("u1", "slow-b"))  # queued behind slow-a: same member
    other = asyncio.create_task(bot.say("u2", "hello"))
    await asyncio.sleep(0.05)  # let both requests reach the server
    gates.release["slow-a"].set()
    assert (await other)[0]["text"] == "hi"
    gates.release["slow-b"].set()
    await asyncio.gather(first, second)
    # u2 was handled before u1's queued message, not after it.
    assert gates.log.index(("hello", "u2")) < gates.log.index(("start", "slow-b"))


async def test_different_members_are_handled_concurrently_on_postgres(
    gated: tuple[SandboxClient, Gates], on_postgres: bool,
) -> None:
    if not on_postgres:
        pytest.skip("SQLite has one writer: updates share its transaction in turn (DESIGN §9)")
    bot, gates = gated
    dispatcher = bot.dispatcher
    lane = dispatcher.lane_of(_update("u1"))
    other_member = next(f"u{i}" for i in range(2, 100) if dispatcher.lane_of(_update(f"u{i}")) != lane)
    gates.gate("slow-a")
    gates.gate("slow-c")
    first = asyncio.create_task(bot.say("u1", "slow-a"))
    await gates.started["slow-a"].wait()
    other = asyncio.create_task(bot.say(other_member, "slow-c"))
    # The other member's handler starts while u1's is still running: they are not serialized.
    await asyncio.wait_for(gates.started["slow-c"].wait(), 5)
    assert ("end", "slow-a") not in gates.log
    gates.release["slow-a"].set()
    gates.release["slow-c"].set()
    await asyncio.gather(first, other)


def _update(sender: str):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from bot.update import Update

    return Update(channel="sandbox", key="k", sender=sender, at=datetime.now(UTC))


async def test_twenty_concurrent_messages_of_one_member_are_all_counted(gated: tuple[SandboxClient, Gates]) -> None:
    from sqlalchemy import select

    from storage.models import Member

    bot, _ = gated
    replies = await asyncio.gather(*(bot.say("u1", "hello") for _ in range(20)))
    assert all(r[0]["text"] == "hi" for r in replies)
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == "u1"))).scalar_one()
    assert member.message_count == 20


async def test_member_locks_are_dropped_when_idle() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def hold(key: str, name: str, gate: asyncio.Event) -> None:
        async with locks.hold(key):
            order.append(f"in {name}")
            await gate.wait()
            order.append(f"out {name}")

    gate = asyncio.Event()
    tasks = ([asyncio.create_task(hold("m1", n, gate)) for n in ("a", "b")]
             + [asyncio.create_task(hold("m2", "c", gate))])
    await asyncio.sleep(0)
    assert len(locks) == 2 and order == ["in a", "in c"]
    gate.set()
    await asyncio.gather(*tasks)
    assert order.index("out a") < order.index("in b")
    assert len(locks) == 0  # nothing left behind for members who went quiet
