"""Sandbox throughput: N members send M messages each at concurrency C; prints msgs/s, p50, p99.

Drive a running server:      python bench/sandbox_throughput.py --url http://127.0.0.1:8080
Or let the script start one: python bench/sandbox_throughput.py --spawn [--database-url URL]

With --spawn it starts ``siyu run`` on a fresh SQLite file (or the PostgreSQL URL given, whose
tables it empties first) in a separate process, so client and server each get a core. Half the
messages go to groups (handled, counted, no reply) and half one-to-one (each gets a reply, i.e.
an outbox row that the worker delivers), so the figure includes delivery.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

from _spawn import spawn_siyu, wait_ready


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(url: str, members: int, messages: int, concurrency: int, groups: int) -> dict[str, float]:
    jobs: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    # Interleave members so concurrent requests mostly belong to different members.
    for m in range(messages):
        for u in range(members):
            jobs.put_nowait((u, m))
    latencies: list[float] = []
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while not jobs.empty():
            u, m = jobs.get_nowait()
            body = {"from": f"bench-u{u}", "text": f"消息 {m}", "name": f"成员{u}",
                    "chat": f"bench-g{u % groups}" if m % 2 == 0 else None}
            t0 = time.perf_counter()
            async with session.post(f"{url}/sandbox/messages", json=body) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Warm up: create the members and groups, let the server settle.
        warm = [session.post(f"{url}/sandbox/messages", json={"from": f"bench-u{u}", "text": "hi"})
                for u in range(min(members, 64))]
        for r in await asyncio.gather(*warm):
            r.release()
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "messages": len(latencies), "errors": errors, "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8080", help="a running siyu (ignored with --spawn)")
    p.add_argument("--spawn", action="store_true", help="start siyu in a subprocess for the run")
    p.add_argument("--database-url", help="with --spawn: PostgreSQL URL (its public schema is wiped!)")
    p.add_argument("--port", type=int, default=18080, help="with --spawn: port to serve on")
    p.add_argument("-n", "--members", type=int, default=500)
    p.add_argument("-m", "--messages", type=int, default=20, help="messages per member")
    p.add_argument("-c", "--concurrency", type=int, default=32)
    p.add_argument("-g", "--groups", type=int, default=20)
    args = p.parse_args()
    proc = None
    url = args.url
    backend = "running server"
    if args.spawn:
        proc = spawn_siyu(args.database_url, args.port)
        url = f"http://127.0.0.1:{args.port}"
        backend = "postgresql" if args.database_url else "sqlite"
    try:
        asyncio.run(wait_ready(url))
        r = asyncio.run(drive(url, args.members, args.messages, args.concurrency, args.groups))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"backend={backend} members={args.members} messages={r['messages']} concurrency={args.concurrency} "
          f"errors={r['errors']}")
    print(f"throughput {r['rate']:.0f} msgs/s   p50 {r['p50_ms']:.1f} ms   p99 {r['p99_ms']:.1f} ms   "
          f"mean {r['mean_ms']:.1f} ms   ({r['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
