"""Broadcast fan-out: wall time against the rate limit's lower bound, CPU per delivery.

    python bench/broadcast.py --groups 500 5000 [--rate 200] [--database-url postgresql+psycopg://...]

Sandbox: starts ``siyu run`` (a fresh database) with ``[sandbox] send_rate_per_s = --rate`` and
``send_latency_ms = 50``, creates the groups, sends ``/broadcast all ...`` and 确认 as an admin,
and waits until every group has it. The lower bound is groups / rate; CPU is the server
process's (user + system, from /proc) during the fan-out, per delivery.

WeCom: in this process, the same number of customer groups over ``--owners`` owners are planned
and packed into owner tasks (one per owner, at most 2,000 groups each), which the outbox worker
hands to the fake WeCom server (50 ms per call) through the WeCom channel's rate limit. The
lower bound is tasks / that rate; CPU is this process's (the fake server's included), per group.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _spawn import spawn_siyu, wait_ready  # noqa: E402

LATENCY_MS = 50
TEXT = "【今日话题】你最喜欢哪款新品？"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sandbox(groups: int, rate: float, database_url: str | None, port: int) -> tuple[float, float, float]:
    config = (f'[operators]\nadmins = ["sandbox:op1"]\n'
              f'[sandbox]\nsend_rate_per_s = {rate}\nsend_latency_ms = {LATENCY_MS}\n'
              '[scheduler]\nquiet_hours = []\nper_group_daily_cap = 0\n')
    proc = spawn_siyu(database_url, port, config)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as http:
            sem = asyncio.Semaphore(32)

            async def join(i: int) -> None:
                async with sem, http.post(f"{url}/sandbox/events", json={"type": "member_joined", "user": f"m{i}",
                                                                         "chat": f"g{i}"}) as resp:
                    assert resp.status == 200, await resp.text()

            await asyncio.gather(*(join(i) for i in range(groups)))

            async def say(text: str) -> str:
                async with http.post(f"{url}/sandbox/messages", json={"from": "op1", "text": text}) as resp:
                    return "\n".join(r["text"] for r in (await resp.json())["replies"])

            # The joins' welcomes go through the same rate limit: let them drain (oldest first, so
            # the last group's means all), and time the fan-out alone.
            while True:
                async with http.get(f"{url}/sandbox/outbox", params={"chat": f"g{groups - 1}"}) as resp:
                    if (await resp.json())["messages"]:
                        break
                await asyncio.sleep(0.2)
            await say(f"/broadcast all {TEXT}")
            cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            started = await say("确认")
            broadcast_id = re.search(r"#(\d+)", started).group(1)  # type: ignore[union-attr]
            while True:
                status = await say(f"/broadcast status {broadcast_id}")
                match = re.search(r"已送达 (\d+)", status)
                if match and int(match.group(1)) == groups:
                    break
                await asyncio.sleep(0.25)
            wall, cpu = time.perf_counter() - t0, cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    return wall, groups / rate, cpu / groups * 1000


async def wecom(groups: int, owners: int) -> tuple[float, float, float, int]:
    from bot.builtin import config_from_dict
    from bot.channels.wecom.channel import WeComChannel
    from bot.outbox import OutboxWorker
    from bot.testing import FakeClock
    from bot.testing.fake_wecom import FakeWeCom
    from bot.texts import Texts
    from handlers.broadcasts import digests, planner
    from storage import broadcasts, migrate
    from storage.engine import Database
    from storage.models import Group

    folder = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    url = f"sqlite:///{folder / 'wecom.db'}"
    async with FakeWeCom(corp_id="wwbench", secret="s") as fake:
        fake.delay("externalcontact/add_msg_template", LATENCY_MS / 1000)
        config = config_from_dict({"storage": {"url": url}, "scheduler": {"quiet_hours": [], "per_group_daily_cap": 0},
                                   "server": {"public_url": "http://127.0.0.1"},  # WeCom's sign-in returns there
                                   "wecom": {"enabled": True, "corp_id": "wwbench", "agent_id": 1, "secret": "s",
                                             "token": "t", "encoding_aes_key": "a" * 43, "api_base_url": fake.base_url,
                                             "group_quota": {"digest_at": "00:00"}}})
        await asyncio.to_thread(migrate.upgrade, url)
        db, clock = Database(url), FakeClock(datetime(2026, 11, 22, 16, 0, tzinfo=UTC))  # 00:00 local
        async with db.transaction() as s:
            for i in range(groups):
                s.add(Group(channel="wecom", external_id=f"wr{i}", owner=f"owner{i % owners}",
                            created_at=clock.now(), last_active_at=clock.now()))
        channel = WeComChannel(config.wecom, clock)
        from aiohttp import web

        app = web.Application()
        from bot.appkeys import DB, DISPATCHER

        app[DB], app[DISPATCHER] = db, None  # type: ignore[assignment]
        await channel.start(app)
        worker = OutboxWorker(db, {"wecom": channel}, clock=clock, config=config.outbox)
        texts = Texts(config.texts)
        cpu0, t0 = time.process_time(), time.perf_counter()
        async with db.transaction() as s:
            b = await broadcasts.create(s, key="bench", source="adhoc", slot=clock.now(), template=TEXT,
                                        target={"all": True}, status=broadcasts.PLANNED, created_by="bench",
                                        now=clock.now())
            assert b is not None
            await planner.plan(s, config, texts, b, now=clock.now())
        tasks = await digests.pack_owner_tasks(db, config, texts, clock.now())
        while await worker.deliver_once():
            pass
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        async with db.read() as s:
            handed = (await broadcasts.progress(s, b))[broadcasts.AWAITING_OWNER]
        assert handed == groups, handed
        await channel.stop()
        await db.dispose()
    return wall, tasks / channel.rate_per_s, cpu / groups * 1000, tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--rate", type=float, default=200.0, help="sandbox sends per second")
    parser.add_argument("--owners", type=int, default=50, help="WeCom group owners")
    parser.add_argument("--database-url", help="PostgreSQL URL for the sandbox run (its public schema is wiped)")
    parser.add_argument("--port", type=int, default=18282)
    args = parser.parse_args()
    for n in args.groups:
        wall, bound, cpu_ms = asyncio.run(sandbox(n, args.rate, args.database_url, args.port))
        print(f"sandbox ({'PostgreSQL' if args.database_url else 'SQLite'}), {n} groups at {args.rate:g}/s with "
              f"{LATENCY_MS} ms a send: {wall:.2f} s against a bound of {bound:.2f} s ({wall / bound:.2f}x), "
              f"{cpu_ms:.2f} ms CPU per delivery")
        wall, bound, cpu_ms, tasks = asyncio.run(wecom(n, args.owners))
        print(f"wecom, {n} groups of {args.owners} owners: {tasks} owner tasks in {wall:.2f} s against a bound of "
              f"{bound:.2f} s ({wall / bound:.2f}x), {cpu_ms:.2f} ms CPU per group (the fake server's included)")


if __name__ == "__main__":
    main()
