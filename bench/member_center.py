"""Member center: the home page and the sign-in button for 2,000 signed-in members at concurrency 32.

    python bench/member_center.py [--members 2000] [-c 32] [--rounds 5]
    python bench/member_center.py --database-url postgresql+psycopg://postgres@localhost/siyu_bench  # wipes it
    SIYU_BENCH_DATABASE_URL=postgresql+psycopg://... python bench/member_center.py                  # the same

Starts ``siyu run`` on a fresh database in a separate process (bench/_spawn.py), with an open
poll (opened by an operator in the sandbox chat) and three tasks, so the home page shows
everything it can. Members sign in the way a developer does, through the sandbox's
``GET /m/?as=<id>`` (a real sign-in: the member is created, a ``member_sessions`` row is written
and the signed cookie is set), one request each, timed too. Then:

1. home: every member opens ``GET /m/`` ``--rounds`` times (members interleaved, so concurrent
   requests belong to different members); each page must show the member's sign-in button;
2. check-in: every member presses 签到 once (``POST /m/checkin`` with the page's CSRF token, the
   same sign-in as in chat, through the dispatcher); each must answer 303 with a notice, and
   the database must hold exactly one check-in per member afterwards;
3. home again, now showing 今日已签到 (the page after a sign-in).

The per-address page limit is raised for the run (every request comes from 127.0.0.1).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from sqlalchemy import create_engine, text

from _spawn import spawn_siyu, wait_ready
from storage.engine import sync_url

CONFIG = """
[member_center]
secret = "bench-member-center-secret-0123456789abcdef"
pages_per_min_per_address = 1000000

[operators]
admins = ["sandbox:boss"]

[[tasks]]
name = "转发品牌文章"
points = 100
proof = true

[[tasks]]
name = "晒单"
points = 50

[[tasks]]
name = "邀请好友"
points = 200
per_day = 3
"""
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    cpu: float = 0.0  # the server process's CPU seconds (all its threads) during the phase

    def line(self) -> str:
        ordered = sorted(self.latencies)

        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        return (f"{self.name:<22} {len(ordered):>6} requests  {len(ordered) / self.seconds:>7.0f} /s   "
                f"p50 {at(0.50):6.1f} ms   p99 {at(0.99):6.1f} ms   max {ordered[-1] * 1000:6.1f} ms   "
                f"server CPU {self.cpu / len(ordered) * 1000:.2f} ms/request   errors {self.errors}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux): a figure the other load on a shared
    machine disturbs less than the wall clock."""
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_phase(name: str, jobs: list[int], concurrency: int, one: Callable[[int], Awaitable[bool]],
                    pid: int) -> Phase:
    phase = Phase(name)
    cpu0 = cpu_seconds(pid)
    queue = list(reversed(jobs))

    async def worker() -> None:
        while queue:
            job = queue.pop()
            t0 = time.perf_counter()
            ok = await one(job)
            phase.latencies.append(time.perf_counter() - t0)
            phase.errors += not ok

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.seconds = time.perf_counter() - t0
    phase.cpu = cpu_seconds(pid) - cpu0
    return phase


async def drive(url: str, members: int, concurrency: int, rounds: int, pid: int) -> list[Phase]:
    cookies: dict[int, str] = {}
    csrf: dict[int, str] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    # No cookie jar: each request carries its own member's cookie.
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
        vote = {"from": "boss", "text": "/vote open 下一款奖品 保温杯:300:50 帆布袋:200:80"}
        async with session.post(f"{url}/sandbox/messages", json=vote) as resp:
            reply = (await resp.json())["replies"][0]["text"]
            assert resp.status == 200 and "投票" in reply, reply

        async def sign_in(n: int) -> bool:
            async with session.get(f"{url}/m/", params={"as": f"m{n}"}, allow_redirects=False) as resp:
                morsel = resp.cookies.get("siyu_m")
                if resp.status != 302 or morsel is None:
                    return False
                cookies[n] = f"siyu_m={morsel.value}"
                return True

        async def home(n: int, want: str) -> bool:
            async with session.get(f"{url}/m/", headers={"Cookie": cookies[n]}, allow_redirects=False) as resp:
                body = await resp.text()
            found = CSRF.search(body)
            if found:
                csrf[n] = found.group(1)
            return resp.status == 200 and want in body and "正在投票：下一款奖品" in body and "邀请好友" in body

        async def checkin(n: int) -> bool:
            async with session.post(f"{url}/m/checkin", data={"csrf": csrf[n]}, headers={"Cookie": cookies[n]},
                                    allow_redirects=False) as resp:
                await resp.read()
                return resp.status == 303 and "siyu_m_notice" in resp.cookies

        everyone = list(range(members))
        phases = [await run_phase("sign-in (?as=)", everyone, concurrency, sign_in, pid)]
        phases.append(await run_phase("home, not signed in", everyone * rounds, concurrency,
                                      lambda n: home(n, 'type="submit">签到</button>'), pid))
        phases.append(await run_phase("POST /m/checkin", everyone, concurrency, checkin, pid))
        phases.append(await run_phase("home, signed in", everyone * rounds, concurrency,
                                      lambda n: home(n, "今日已签到"), pid))
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="home pages per member in each home phase")
    parser.add_argument("--database-url", default=os.environ.get("SIYU_BENCH_DATABASE_URL"),
                        help="PostgreSQL URL (its public schema is wiped); default SQLite in a scratch folder")
    parser.add_argument("--port", type=int, default=18191)
    args = parser.parse_args()
    proc = spawn_siyu(args.database_url, args.port, CONFIG)
    url = f"http://127.0.0.1:{args.port}"
    try:
        asyncio.run(wait_ready(url))
        phases = asyncio.run(drive(url, args.members, args.concurrency, args.rounds, proc.pid))
        # The server's scratch folder holds its SQLite file (Linux: the process's working directory).
        database_url = args.database_url or f"sqlite:///{os.readlink(f'/proc/{proc.pid}/cwd')}/bench.db"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{backend}: {args.members} members, concurrency {args.concurrency}")
    for phase in phases:
        print(phase.line())
    engine = create_engine(sync_url(database_url))
    with engine.connect() as conn:
        rows, distinct = conn.execute(text("SELECT count(*), count(DISTINCT member_id) FROM checkins")).one()
    engine.dispose()
    print(f"check-ins in the database: {rows} rows, {distinct} members (want {args.members} and {args.members})")


if __name__ == "__main__":
    main()
