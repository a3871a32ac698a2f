"""The playbook scheduler: one leader on PostgreSQL, a slot planned once whoever plans it, a
fan-out that survives SIGKILL with no group twice and none missing."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from conftest import free_port, ready, stop_process
from sqlalchemy import create_engine, func, select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, sandbox_app
from bot.texts import Texts
from handlers.broadcasts import playbooks as sop
from handlers.broadcasts.scheduler import PlaybookScheduler
from storage.engine import Database, sync_url
from storage.models import Broadcast, Delivery, OutboxMessage

MONDAY_9 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
PLAYBOOK = {"name": "早安", "text": "早安话题", "cron": "0 9 * * *"}


def with_sop(config: Config, *playbooks: dict[str, object]) -> Config:
    return config.model_copy(update={"sop": SiyuConfig.model_validate({"sop": list(playbooks)}).sop})


async def test_two_planners_on_separate_connections_plan_one_set(
    make_config: Callable[..., Config], clock: FakeClock, on_postgres: bool,
) -> None:
    config = with_sop(make_config(scheduler={"enabled": False}), PLAYBOOK)
    async with sandbox_app(config, clock=clock) as bot:
        for i in range(30):
            await bot.event("member_joined", f"m{i}", chat=f"g{i}")
        clock.set(MONDAY_9)
        # Two databases objects: two engines, two pools, as two processes would have.
        other = Database(config.storage.url)
        try:
            texts = bot.dispatcher.texts
            results = await asyncio.gather(
                sop.plan_slot(bot.db, config, texts, config.sop[0], MONDAY_9, now=clock.now()),
                sop.plan_slot(other, config, texts, config.sop[0], MONDAY_9, now=clock.now()),
                sop.catch_up(other, config, texts, clock.now()))
        finally:
            await other.dispose()
        assert sum(1 for r in results[:2] if r is not None) + results[2] == 1
        async with bot.db.read() as s:
            assert (await s.execute(select(func.count()).select_from(Broadcast))).scalar_one() == 1
            assert (await s.execute(select(func.count()).select_from(Delivery))).scalar_one() == 30


async def test_one_leader_and_a_takeover_within_seconds(make_config: Callable[..., Config], on_postgres: bool) -> None:
    if not on_postgres:
        pytest.skip("leadership is elected on PostgreSQL; SQLite serves one process")
    config = make_config(scheduler={"leader_check_s": 0.2})
    from storage.migrate import upgrade

    await asyncio.to_thread(upgrade, config.storage.url)
    dbs = [Database(config.storage.url) for _ in range(2)]
    schedulers = [PlaybookScheduler(db, config, Texts(config.texts), FakeClock()) for db in dbs]
    try:
        for s in schedulers:
            s.start()
        await asyncio.sleep(1.0)
        assert sorted(s.leader for s in schedulers) == [False, True]
        leader = next(s for s in schedulers if s.leader)
        follower = next(s for s in schedulers if not s.leader)
        started = time.monotonic()
        await leader.stop()  # its session ends: the advisory lock goes with it
        while not follower.leader and time.monotonic() - started < 5:
            await asyncio.sleep(0.05)
        assert follower.leader and time.monotonic() - started < 1.5
    finally:
        for s in schedulers:
            await s.stop()
        for db in dbs:
            await db.dispose()


def spawn(tmp_path: Path, url: str, port: int, extra: str = "") -> subprocess.Popen[bytes]:
    """``siyu run`` on ``port``: admin sandbox:op1, a sandbox sending 100 a second, short leases."""
    (tmp_path / "config.toml").write_text(
        '[operators]\nadmins = ["sandbox:op1"]\n[sandbox]\nsend_rate_per_s = 100.0\n'
        '[outbox]\nlease_s = 3.0\nsend_timeout_s = 1.0\n[scheduler]\nquiet_hours = []\nper_group_daily_cap = 0\n'
        + extra, encoding="utf-8")
    env = {**os.environ, "SIYU_STORAGE_URL": url, "SIYU_LOGGING_LEVEL": "WARNING",
           "SIYU_CONFIG": str(tmp_path / "config.toml")}
    return subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_a_fan_out_killed_midway_resumes_with_no_group_twice(tmp_path: Path, database_url: str) -> None:
    groups = 300
    engine = create_engine(sync_url(database_url))

    def delivered() -> dict[str, int]:
        with engine.connect() as conn:
            rows = conn.execute(select(OutboxMessage.chat, func.count()).where(
                OutboxMessage.status == "delivered",
                OutboxMessage.text == "【今日话题】一起聊聊").group_by(OutboxMessage.chat))
            return dict(rows.all())

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = spawn(tmp_path, database_url, port)
    try:
        await ready(base)
        async with aiohttp.ClientSession() as http:
            for i in range(groups):
                await http.post(f"{base}/sandbox/events",
                                json={"type": "member_joined", "user": f"m{i}", "chat": f"g{i}"})
            for text in ("/broadcast all 【今日话题】一起聊聊", "确认"):
                async with http.post(f"{base}/sandbox/messages", json={"from": "op1", "text": text}) as resp:
                    assert resp.status == 200
        deadline = time.monotonic() + 20
        while len(delivered()) < 60 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # mid fan-out: some delivered, some claimed, most pending
        proc.wait(10)
        before = delivered()
        assert 0 < len(before) < groups
        proc = spawn(tmp_path, database_url, port)
        await ready(base)
        deadline = time.monotonic() + 30
        while len(delivered()) < groups and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        after = delivered()
        assert len(after) == groups and set(after.values()) == {1}  # none missing, none twice
        with engine.connect() as conn:
            states = dict(conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        assert states == {"delivered": groups}
    finally:
        stop_process(proc)
        engine.dispose()


def test_misfire_grace_is_explicit() -> None:
    """The policy is configured, not APScheduler's default of one second."""
    assert SiyuConfig().scheduler.misfire_grace_s == 3600
    assert timedelta(seconds=SiyuConfig().scheduler.misfire_grace_s) > timedelta(minutes=1)


async def test_two_processes_on_postgresql_send_a_slot_once(
    tmp_path: Path, database_url: str, on_postgres: bool,
) -> None:
    if not on_postgres:
        pytest.skip("two processes share one database on PostgreSQL only")
    groups = 20
    engine = create_engine(sync_url(database_url))
    from storage.migrate import upgrade

    upgrade(database_url)
    at = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
    ports = [free_port(), free_port()]
    procs = []
    try:
        for n, port in enumerate(ports):
            folder = tmp_path / f"p{n}"
            folder.mkdir()
            # Both processes know the same playbook: one slot, 15 seconds from now (after the groups exist).
            procs.append(spawn(folder, database_url, port,
                               f'[[sop]]\nname = "开场"\ntext = "两个进程，一次开场"\nat = {at.isoformat()}\n'))
        for port in ports:
            await ready(f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as http:
            for i in range(groups):
                await http.post(f"http://127.0.0.1:{ports[i % 2]}/sandbox/events",
                                json={"type": "member_joined", "user": f"m{i}", "chat": f"g{i}"})
        deadline = time.monotonic() + 30
        sent: dict[str, int] = {}
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                sent = dict(conn.execute(select(OutboxMessage.chat, func.count()).where(
                    OutboxMessage.status == "delivered",
                    OutboxMessage.text == "两个进程，一次开场").group_by(OutboxMessage.chat)).all())
            if len(sent) == groups:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything doubled would land by now
        with engine.connect() as conn:
            sent = dict(conn.execute(select(OutboxMessage.chat, func.count()).where(
                OutboxMessage.text == "两个进程，一次开场").group_by(OutboxMessage.chat)).all())
            planned = conn.execute(select(func.count()).select_from(Broadcast)).scalar_one()
        assert len(sent) == groups and set(sent.values()) == {1} and planned == 1
    finally:
        for proc in procs:
            stop_process(proc)
        engine.dispose()

