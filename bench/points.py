"""Points: daily sign-ins per second through the sandbox at concurrency 64.

    python bench/points.py [--members 10000] [--database-url postgresql+psycopg://...]   # wipes it

Starts ``siyu run`` on a fresh database and has ``--members`` members each send 签到 once (each a
ledger credit, a check-in row and a reply), then checks the ledger: every member credited
exactly once. (The hot-reward redemption figure comes with redemption.)
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from sqlalchemy import create_engine, text

from _spawn import spawn_siyu, wait_ready


async def drive(url: str, members: int, concurrency: int) -> tuple[float, list[float], int]:
    queue = list(range(members))
    latencies: list[float] = []
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while queue:
            n = queue.pop()
            t0 = time.perf_counter()
            async with session.post(f"{url}/sandbox/messages",
                                    json={"from": f"signer{n}", "chat": f"g{n % 50}", "text": "签到"}) as resp:
                body = await resp.json()
                errors += resp.status != 200 or not body["replies"][0]["text"].startswith("签到成功")
            latencies.append((time.perf_counter() - t0) * 1000)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - t0, sorted(latencies), errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("--database-url", help="PostgreSQL URL (its public schema is wiped)")
    parser.add_argument("--port", type=int, default=18181)
    args = parser.parse_args()
    proc = spawn_siyu(args.database_url, args.port)
    url = f"http://127.0.0.1:{args.port}"
    try:
        asyncio.run(wait_ready(url))
        elapsed, latencies, errors = asyncio.run(drive(url, args.members, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    print(f"{'PostgreSQL' if args.database_url else 'SQLite'}: {args.members} sign-ins at concurrency "
          f"{args.concurrency}: {args.members / elapsed:.0f} sign-ins/s, p50 {statistics.median(latencies):.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms, errors {errors}")
    if args.database_url:
        engine = create_engine(args.database_url)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT count(*), sum(balance), min(balance), max(balance) FROM point_balances")).one()
        print(f"ledger: {row[0]} balances, total {row[1]}, each between {row[2]} and {row[3]}")


if __name__ == "__main__":
    main()
