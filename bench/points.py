"""Points: daily sign-ins per second at concurrency 64, and a rush on one hot reward.

    python bench/points.py [--members 10000] [--database-url postgresql+psycopg://...]   # wipes it

Starts ``siyu run`` on a fresh database. First ``--members`` members each send 签到 once (each a
ledger credit, a check-in row and a reply). Then 1,000 of them pick the same reward (100 units)
and all confirm at once; the script times the rush and checks that exactly 100 got one, that
the reward's units add up, and (on PostgreSQL) that every ledger balances.

With ``--side-by-side`` the same server first takes one plain group chat line from each member
(no reply), then the sign-ins, then one task check-in (打卡) each, all in the members' groups, and
prints the three rates and their ratio to chat (issue 20's target: 签到 and 打卡 ≥ 0.7 × chat).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from sqlalchemy import create_engine, text

from _spawn import spawn_siyu, wait_ready

CONFIG = """
[checkin]
daily_points = 1000

[levels]  # one tier: the sign-in figure measures sign-ins, not level-ups
tiers = [{ name = "会员", min_points = 0 }]

[[rewards]]
name = "爆款空气炸锅"
cost = 500
stock = 100

[[tasks]]
name = "转发"
points = 5
per_day = 0
"""
RUSH = 1000


async def rush(url: str, concurrency: int) -> tuple[float, int, int]:
    """(seconds, confirmations that got a unit, those told it is gone) for RUSH members."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def say(n: int, text: str) -> str:
            async with session.post(f"{url}/sandbox/messages", json={"from": f"signer{n}", "text": text}) as resp:
                return (await resp.json())["replies"][0]["text"]

        await asyncio.gather(*(say(n, "兑换 1") for n in range(RUSH)))
        t0 = time.perf_counter()
        answers = await asyncio.gather(*(say(n, "确认") for n in range(RUSH)))
        elapsed = time.perf_counter() - t0
    return elapsed, sum("兑换成功" in a for a in answers), sum("被兑完了" in a for a in answers)


async def drive(url: str, members: int, concurrency: int, said: str = "签到",
                answer: str | None = "签到成功") -> tuple[float, list[float], int]:
    queue = list(range(members))
    latencies: list[float] = []
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while queue:
            n = queue.pop()
            t0 = time.perf_counter()
            async with session.post(f"{url}/sandbox/messages",
                                    json={"from": f"signer{n}", "chat": f"g{n % 50}", "text": said}) as resp:
                body = await resp.json()
                wrong = answer is not None and not body["replies"][0]["text"].startswith(answer)
                errors += resp.status != 200 or wrong
            latencies.append((time.perf_counter() - t0) * 1000)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - t0, sorted(latencies), errors


def line(label: str, elapsed: float, latencies: list[float], errors: int, count: int) -> str:
    return (f"{label}: {count / elapsed:.0f}/s, p50 {statistics.median(latencies):.1f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms, errors {errors}")


def side_by_side(url: str, args: argparse.Namespace) -> None:
    """Chat, then 签到 (timed here; the main run's sign-ins then find them done), then 打卡."""
    rates = {}
    for label, said, answer in (("plain group chat", "大家早上好", None), ("签到", "签到", "签到成功"),
                                ("打卡", "打卡 转发", "打卡成功")):
        elapsed, latencies, errors = asyncio.run(drive(url, args.members, args.concurrency, said, answer))
        rates[label] = args.members / elapsed
        ratio = f" ({rates[label] / rates['plain group chat']:.2f} × chat)" if label != "plain group chat" else ""
        print(line(label, elapsed, latencies, errors, args.members) + ratio, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("-c", "--concurrency", type=int, default=64)
    parser.add_argument("--database-url", help="PostgreSQL URL (its public schema is wiped)")
    parser.add_argument("--port", type=int, default=18181)
    parser.add_argument("--digest", type=float, help="[signin] group_digest_s (0: a line each; default: its default)")
    parser.add_argument("--side-by-side", action="store_true", help="plain chat, 签到 and 打卡 in one run")
    args = parser.parse_args()
    # [checkin] is the section's old name, still read: so is its group_digest_s.
    config = CONFIG if args.digest is None else CONFIG.replace(
        "[checkin]\n", f"[checkin]\ngroup_digest_s = {args.digest}\n")
    proc = spawn_siyu(args.database_url, args.port, config)
    url = f"http://127.0.0.1:{args.port}"
    try:
        asyncio.run(wait_ready(url))
        if args.side_by_side:
            side_by_side(url, args)
        if args.side_by_side:  # the members signed in already: the rush follows
            elapsed, latencies, errors = 1.0, [0.0], 0
        else:
            elapsed, latencies, errors = asyncio.run(drive(url, args.members, args.concurrency))
        rush_s, won, gone = asyncio.run(rush(url, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    if not args.side_by_side:
        print(f"{'PostgreSQL' if args.database_url else 'SQLite'}: {args.members} sign-ins at concurrency "
              f"{args.concurrency}: " + line("sign-ins", elapsed, latencies, errors, args.members))
    print(f"rush: {RUSH} members confirm the same reward (100 units) at once: {rush_s:.2f} s; "
          f"{won} got one, {gone} were told it is gone")
    if args.database_url:
        engine = create_engine(args.database_url)
        with engine.connect() as conn:
            units = conn.execute(text("SELECT stock, reserved, fulfilled FROM rewards")).one()
            unbalanced = conn.execute(text(
                "SELECT count(*) FROM point_balances b WHERE b.balance <> "
                "(SELECT coalesce(sum(delta), 0) FROM point_entries e WHERE e.member_id = b.member_id)")).scalar_one()
        print(f"reward units: stock {units[0]} + reserved {units[1]} + fulfilled {units[2]} = {sum(units)}; "
              f"ledgers out of balance: {unbalanced}")


if __name__ == "__main__":
    main()
