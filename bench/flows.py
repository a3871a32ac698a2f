"""Flows at scale: 100,000 members with flow rows; trigger latency and process memory.

    python bench/flows.py                      # SQLite in a scratch folder
    python bench/flows.py --database-url postgresql+psycopg://postgres@localhost/siyu_bench   # wipes it

It seeds members and their flow rows with bulk inserts, then answers one step of a flow for
members picked at random, one at a time, and reports:
- trigger latency: the flow engine's work for one answer inside its transaction (load the
  member's active flow row, trigger the event on the flow's one machine, save the row), and the
  whole update around it (dedup, member upsert, routing, the reply in the outbox, commit);
- the process's resident memory with 1,000 and with 100,000 members in flows.
Target: trigger p50 under 2 ms; memory growth under 50 MB from 1,000 to 100,000 members.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import resource
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

# This file is named like the ``flows`` package: keep its folder off the import path, and load
# the benchmarks' helper by its file name.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
_helper = importlib.util.spec_from_file_location("_spawn", HERE / "_spawn.py")
assert _helper is not None and _helper.loader is not None
_spawn = importlib.util.module_from_spec(_helper)
_helper.loader.exec_module(_spawn)
fresh_database = _spawn.fresh_database

from bot.clock import SystemClock  # noqa: E402
from bot.config import Config  # noqa: E402
from bot.context import Context  # noqa: E402
from bot.dispatcher import Dispatcher  # noqa: E402
from bot.texts import Texts  # noqa: E402
from bot.update import Update  # noqa: E402
from flows.engine import Flow, State  # noqa: E402
from flows.runner import FlowEngine  # noqa: E402
from storage.engine import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from storage.models import Member, MemberFlow  # noqa: E402

STATES = 10


def ring() -> Flow:
    """Ten states in a ring: every answer moves a member one step, forever."""
    names = [f"s{i}" for i in range(STATES)]
    transitions = [{"trigger": "answer", "source": a, "dest": names[(i + 1) % STATES]} for i, a in enumerate(names)]
    return Flow("ring", states=[State(n, prompt=n) for n in names], transitions=transitions,
                texts={n: f"第 {i} 题" for i, n in enumerate(names)})


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def seed(db: Database, start: int, stop: int) -> None:
    now = datetime.now(UTC)
    for lo in range(start, stop, 5000):
        hi = min(stop, lo + 5000)
        async with db.transaction() as s:
            await s.execute(Member.__table__.insert(), [
                {"id": i, "channel": "sandbox", "external_id": f"m{i}", "status": "active", "message_count": 0,
                 "first_seen_at": now, "last_seen_at": now, "attributes": {}} for i in range(lo, hi)])
            await s.execute(MemberFlow.__table__.insert(), [
                {"member_id": i, "flow": "ring", "state": f"s{i % STATES}", "data": {}, "version": 1, "active": True,
                 "entered_at": now, "deadlines_fired": 0, "started_at": now, "updated_at": now} for i in range(lo, hi)])


async def measure(dispatcher: Dispatcher, engine: FlowEngine, members: int,
                  samples: int) -> tuple[list[float], list[float]]:
    """(engine-only latencies, whole-update latencies) in ms over ``samples`` random members."""
    engine_ms: list[float] = []
    update_ms: list[float] = []
    handle, prefetch = engine.handle, engine.prefetch
    loaded_ms = 0.0

    async def timed_prefetch(ctxs: list[Context]) -> None:
        # Loading the row is the engine's work too, though it happens once per batch.
        nonlocal loaded_ms
        t0 = time.perf_counter()
        await prefetch(ctxs)
        loaded_ms = (time.perf_counter() - t0) * 1000

    async def timed_handle(ctx: Context) -> bool:
        t0 = time.perf_counter()
        taken = await handle(ctx)
        engine_ms.append((time.perf_counter() - t0) * 1000 + loaded_ms)
        return taken

    engine.handle = timed_handle  # type: ignore[method-assign]
    engine.prefetch = timed_prefetch  # type: ignore[method-assign]
    for n in range(samples):
        who = random.randrange(1, members + 1)
        t0 = time.perf_counter()
        await dispatcher.feed(Update(channel="sandbox", key=f"bench:{members}:{n}:{time.time_ns()}", sender=f"m{who}",
                                     at=datetime.now(UTC), text="答"))
        update_ms.append((time.perf_counter() - t0) * 1000)
    engine.handle, engine.prefetch = handle, prefetch  # type: ignore[method-assign]
    return engine_ms, update_ms


def report(label: str, values: list[float]) -> str:
    values = sorted(values)
    return (f"{label}: p50 {statistics.median(values):.2f} ms, p99 {values[int(len(values) * 0.99) - 1]:.2f} ms "
            f"({len(values)} triggers)")


async def main(database_url: str | None, samples: int, total: int) -> None:
    _, url = fresh_database(database_url)
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    engine = FlowEngine([ring()])
    dispatcher = Dispatcher(db, clock=SystemClock(), texts=Texts(Config().texts), flows=engine, lanes=1)
    print(f"database: {db.dialect}")
    await seed(db, 1, 1001)
    await measure(dispatcher, engine, 1000, 200)  # warm up
    engine_ms, update_ms = await measure(dispatcher, engine, 1000, samples)
    rss_1k = rss_mb()
    print(f"1,000 members:   {report('engine', engine_ms)}; {report('whole update', update_ms)}; RSS {rss_1k:.1f} MB")
    t0 = time.perf_counter()
    await seed(db, 1001, total + 1)
    print(f"seeded {total:,} members with flow rows in {time.perf_counter() - t0:.1f} s")
    engine_ms, update_ms = await measure(dispatcher, engine, total, samples)
    rss_100k = rss_mb()
    print(f"{total:,} members: {report('engine', engine_ms)}; {report('whole update', update_ms)}; "
          f"RSS {rss_100k:.1f} MB")
    print(f"memory growth from 1,000 to {total:,} members: {rss_100k - rss_1k:+.1f} MB; "
          f"member locks held: {len(dispatcher.member_locks)}")
    await dispatcher.close()
    await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (its public schema is wiped)")
    parser.add_argument("--samples", type=int, default=2000, help="triggers measured at each size")
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.samples, args.members))
