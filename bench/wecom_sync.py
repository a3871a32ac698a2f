"""The WeCom day-one sync: wall time, API calls and peak memory, first run and second run.

    python bench/wecom_sync.py [--customers 100000] [--staff 20] [--groups 500] [--latency-ms 50]
                               [--calls-per-s 30] [--database-url postgresql+psycopg://...]

A fake WeCom in a child process (so that its data is not counted in the sync's memory) serves
``--customers`` customers spread over ``--staff`` staff and ``--groups`` customer groups of 40
members, answering every call after ``--latency-ms``. The sync runs in this process, as
``siyu wecom sync`` runs it, over a fresh database (SQLite, or the PostgreSQL URL given, whose
public schema is wiped); then again over the same data, which must change nothing. Peak memory
is this process's maximum resident set size.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _spawn import fresh_database  # noqa: E402

CORP, SECRET = "ww-bench-corp", "bench-secret"


async def serve(customers: int, staff: int, groups: int, latency_s: float) -> None:
    from bot.testing.fake_wecom import FakeWeCom

    async with FakeWeCom(corp_id=CORP, secret=SECRET) as fake:
        users = [f"staff{s:02d}" for s in range(staff)]
        for i in range(customers):
            fake.add_customer(users[i % staff], f"wm{i:07d}", name=f"客户{i}", createtime=1_700_000_000 + i,
                              state="poster" if i % 3 == 0 else "", remark="老客户" if i % 7 == 0 else "")
        for g in range(groups):
            owner = users[g % staff]
            fake.add_group(f"wrBench{g:05d}", owner, [owner, *(f"wm{(g * 40 + k) % customers:07d}" for k in range(39))],
                           name=f"老客户群{g}", version=f"v{g}")
        fake.latency(latency_s)
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def sync_once(url: str, base_url: str, calls_per_s: float) -> dict[str, float]:
    import aiohttp

    from bot.channels.wecom.config import WecomConfig
    from bot.channels.wecom.sync import for_channel
    from bot.clock import SystemClock
    from storage.engine import Database

    settings = WecomConfig(enabled=True, corp_id=CORP, agent_id=1, secret=SECRET, token="t",
                           encoding_aes_key="6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", api_base_url=base_url,
                           sync_calls_per_s=calls_per_s)
    db = Database(url)
    began = time.monotonic()
    try:
        async with aiohttp.ClientSession() as http:
            state = await for_channel(db, http, settings, SystemClock()).run()
    finally:
        await db.dispose()
    assert state is not None
    c = state.counts
    return {"seconds": round(time.monotonic() - began, 1), "calls": c["calls"], "customers": c.get("customers", 0),
            "groups": c.get("groups", 0), "errors": c.get("errors", 0), "peak_mb": round(peak_mb(), 1),
            "changed": sum(v for k, v in c.items() if k.endswith(("_added", "_changed", "_joins", "_leaves")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--staff", type=int, default=20)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--calls-per-s", type=float, default=30.0)
    parser.add_argument("--database-url")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.customers, args.staff, args.groups, args.latency_ms / 1000))
        return
    from storage.migrate import upgrade

    fake = subprocess.Popen([sys.executable, __file__, "--serve", "--customers", str(args.customers), "--staff",
                             str(args.staff), "--groups", str(args.groups), "--latency-ms", str(args.latency_ms)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        base_url = fake.stdout.readline().strip()
        _, url = fresh_database(args.database_url)
        upgrade(url)
        pages = -(-args.customers // 100) + args.staff  # a last, short page per staff member at most
        floor = (1 + pages + -(-args.groups // 100) + args.groups) / args.calls_per_s
        print(f"{args.customers:,} customers, {args.staff} staff, {args.groups} groups; fake latency "
              f"{args.latency_ms:.0f} ms; pacing {args.calls_per_s:g} calls/s (floor about {floor:.0f} s); "
              f"{'PostgreSQL' if args.database_url else 'SQLite'}")
        for run in ("first", "second"):
            figures = asyncio.run(sync_once(url, base_url, args.calls_per_s))
            print(f"{run:>6} run: " + json.dumps(figures), flush=True)
    finally:
        fake.terminate()
        fake.wait()


if __name__ == "__main__":
    main()
