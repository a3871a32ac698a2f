"""Three siyu processes on one PostgreSQL database behind a load balancer, one of them killed
with SIGKILL in the middle of a redemption rush, a 500-group broadcast and WeCom traffic:
nothing is lost, nothing is doubled, and the scheduler goes on in a survivor."""
from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import WECOM_AES_KEY, WECOM_CORP, WECOM_TOKEN, free_port, ready, stop_process
from sqlalchemy import create_engine, func, select, text

from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, text_message
from storage.engine import sync_url
from storage.models import Delivery, InboundUpdate, OutboxMessage, Redemption, Reward, SignIn

MEMBERS, GROUPS, RUSH, STOCK, WECOM_MEMBERS = 1000, 500, 200, 50, 100
TOKEN = "scale-out-operator-token-0123456789"
TOPIC, LATE_TOPIC = "【500 群】今天聊聊你的早餐", "【接班】调度在幸存的进程上运行"


def config_text(fake: FakeWeCom, sop_at: datetime) -> str:
    return f"""
[sandbox]
send_rate_per_s = 150.0
[outbox]
lease_s = 3.0
send_timeout_s = 1.0
[scheduler]
quiet_hours = []
per_group_daily_cap = 0
leader_check_s = 0.5
[api]
tokens = [{{ token = "{TOKEN}", role = "operator", name = "lb" }}]
[onboarding]
enabled = false
[server]
public_url = "http://127.0.0.1:8080"
[wecom]
enabled = true
corp_id = "{WECOM_CORP}"
agent_id = 1000002
secret = "app-secret"
token = "{WECOM_TOKEN}"
encoding_aes_key = "{WECOM_AES_KEY}"
api_base_url = "{fake.base_url}"
replay_window_s = 0
[[rewards]]
name = "帆布袋"
cost = 10
stock = {STOCK}
[[sop]]
name = "接班"
text = "{LATE_TOPIC}"
at = {sop_at.isoformat()}
"""


class Balancer:
    """What nginx does with ``proxy_next_upstream error``: requests go round-robin; one that
    cannot reach its process goes to the next (the same message id: a retry, not a copy)."""

    def __init__(self, http: aiohttp.ClientSession, ports: list[int]) -> None:
        self.http, self.ports, self.dead, self.retried = http, ports, set[int](), 0
        self._turn = itertools.count()

    async def post(self, path: str, **kw: Any) -> int:
        start = next(self._turn)
        for i in range(len(self.ports) * 2):
            port = self.ports[(start + i) % len(self.ports)]
            if port in self.dead:
                continue
            try:
                async with self.http.post(f"http://127.0.0.1:{port}{path}", **kw) as resp:
                    await resp.read()
                    if resp.status < 500:
                        return resp.status
            except (TimeoutError, aiohttp.ClientError):
                pass
            self.retried += 1
        raise AssertionError(f"no process answered {path}")


async def bounded(jobs: list[Callable[[], Awaitable[Any]]], concurrency: int = 24) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def run(job: Callable[[], Awaitable[Any]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(run(j) for j in jobs))


async def test_three_processes_one_killed_lose_and_double_nothing(tmp_path: Path, database_url: str, on_postgres: bool,
                                                                  fake: FakeWeCom) -> None:
    if not on_postgres:
        pytest.skip("several processes share one database on PostgreSQL only")
    from storage.migrate import upgrade

    upgrade(database_url)
    engine = create_engine(sync_url(database_url))

    def scalar(query: Any) -> Any:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()

    sop_at = (datetime.now(UTC) + timedelta(seconds=50)).replace(microsecond=0)
    (tmp_path / "config.toml").write_text(config_text(fake, sop_at), encoding="utf-8")
    env = {**os.environ, "SIYU_STORAGE_URL": database_url, "SIYU_LOGGING_LEVEL": "WARNING",
           "SIYU_CONFIG": str(tmp_path / "config.toml")}
    ports = [free_port() for _ in range(3)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n, port in enumerate(ports):
            log = (tmp_path / f"siyu{n}.log").open("wb")
            procs.append(subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env,
                                          cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT))
            await ready(f"http://127.0.0.1:{port}")  # the first one started leads the scheduler
        callbacks = CallbackBuilder(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            lb = Balancer(http, ports)
            # 1,000 members sign in across 500 groups (the groups the broadcast goes to).
            await bounded([lambda i=i: lb.post("/sandbox/messages", json={
                "from": f"m{i}", "chat": f"g{i % GROUPS}", "text": "签到", "id": f"signin-{i}"})
                for i in range(MEMBERS)])

            # Then at once: the broadcast, a rush of 200 members on 50 units, WeCom members signing in.
            async def rush(i: int) -> None:
                for step, said in enumerate(("兑换 1", "确认")):
                    await lb.post("/sandbox/messages", json={"from": f"m{i}", "text": said, "id": f"rush-{i}-{step}"})

            async def wecom(i: int) -> None:
                path, body = callbacks.post(text_message(f"w{i}", "签到", 900_000 + i, corp_id=WECOM_CORP))
                assert await lb.post(path, data=body) == 200

            async def broadcast() -> None:
                assert await lb.post("/api/broadcasts", json={"target": "all", "text": TOPIC},
                                     headers={"Authorization": f"Bearer {TOKEN}"}) == 201

            async def kill_midway() -> None:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and (scalar(select(func.count()).select_from(Delivery).where(
                        Delivery.status == "delivered")) < GROUPS // 5):
                    await asyncio.sleep(0.02)
                procs[0].send_signal(signal.SIGKILL)  # no goodbye: claimed rows, open requests, the leader's lock
                lb.dead.add(ports[0])

            await asyncio.gather(broadcast(), kill_midway(), bounded([lambda i=i: rush(i) for i in range(RUSH)], 16),
                                 bounded([lambda i=i: wecom(i) for i in range(WECOM_MEMBERS)], 8))
        procs[0].wait(10)

        # Everything settles on the survivors: leases run out, the WeCom backlog is rescanned.
        def settled() -> bool:
            return (scalar(select(func.count()).select_from(InboundUpdate).where(
                        InboundUpdate.handled_at.is_(None))) == 0
                    and scalar(select(func.count()).select_from(OutboxMessage).where(
                        OutboxMessage.status.in_(("pending", "sending")))) == 0
                    and scalar(select(func.count()).select_from(Delivery).where(
                        Delivery.status == "delivered", Delivery.text == LATE_TOPIC)) == GROUPS)

        deadline = time.monotonic() + 150
        while not settled() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert settled(), "the survivors did not finish the work"

        with engine.connect() as conn:
            # Every inbound message handled exactly once: one row per id, each handled, one sign-in each.
            sandbox_keys = conn.execute(select(func.count()).select_from(InboundUpdate).where(
                InboundUpdate.channel == "sandbox")).scalar_one()
            assert sandbox_keys == MEMBERS + 2 * RUSH
            assert conn.execute(select(func.count()).select_from(SignIn)).scalar_one() == MEMBERS + WECOM_MEMBERS
            # Stock and ledgers: exactly the units there were, nobody's points out of step.
            reward = conn.execute(select(Reward)).one()
            assert (reward.stock, reward.reserved, reward.fulfilled) == (0, STOCK, 0)
            assert conn.execute(select(func.count()).select_from(Redemption)).scalar_one() == STOCK
            out_of_step = conn.execute(text("""
                SELECT count(*) FROM point_balances b
                LEFT JOIN (SELECT member_id, sum(delta) AS s FROM point_entries GROUP BY member_id) e USING (member_id)
                LEFT JOIN (SELECT member_id, sum(remaining) AS r FROM point_lots GROUP BY member_id) l USING (member_id)
                WHERE b.balance + b.pending <> coalesce(e.s, 0) OR b.balance + b.pending <> coalesce(l.r, 0)
                   OR b.balance < 0""")).scalar_one()
            assert out_of_step == 0
            # Every delivery exactly once: one delivered row per group and broadcast.
            per_group = Counter(conn.execute(select(Delivery.text, Delivery.group_id).where(
                Delivery.status == "delivered")).all())
            assert len(per_group) == 2 * GROUPS and set(per_group.values()) == {1}
            # WeCom: each member's sign-in answered; a second copy only for a send the kill cut off.
            retried = set(conn.execute(select(OutboxMessage.to).where(
                OutboxMessage.channel == "wecom", OutboxMessage.attempts > 1)).scalars())
        answers = Counter(c.body["touser"] for c in fake.calls("message/send") if c.body)
        assert set(answers) == {f"w{i}" for i in range(WECOM_MEMBERS)}
        assert {who for who, n in answers.items() if n > 1} <= retried
        # The scheduler's slot after the kill was planned by a survivor, once (checked above: GROUPS rows).
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop_process(proc)
        engine.dispose()


async def test_sigterm_finishes_the_sends_under_way_hands_back_the_rest_and_exits(tmp_path: Path,
                                                                                  database_url: str) -> None:
    """A graceful stop mid fan-out: the process exits by itself, leaves no row claimed (another
    process need not wait for a lease), and the rest goes out after, each group once."""
    from storage.migrate import upgrade

    upgrade(database_url)
    engine = create_engine(sync_url(database_url))

    def by_status(topic_only: bool = True) -> dict[str, int]:
        with engine.connect() as conn:
            query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            return dict(conn.execute(query.where(OutboxMessage.text == TOPIC) if topic_only else query).all())

    (tmp_path / "config.toml").write_text(
        '[operators]\nadmins = ["sandbox:op1"]\n[sandbox]\nsend_rate_per_s = 10.0\n[outbox]\nlease_s = 60.0\n'
        '[scheduler]\nquiet_hours = []\nper_group_daily_cap = 0\n', encoding="utf-8")
    env = {**os.environ, "SIYU_STORAGE_URL": database_url, "SIYU_LOGGING_LEVEL": "WARNING",
           "SIYU_CONFIG": str(tmp_path / "config.toml")}
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    proc = start()
    try:
        await ready(f"http://127.0.0.1:{port}")
        async with aiohttp.ClientSession() as http:
            for i in range(100):
                await http.post(f"http://127.0.0.1:{port}/sandbox/events",
                                json={"type": "member_joined", "user": f"m{i}", "chat": f"g{i}"})
            for said in (f"/broadcast all {TOPIC}", "确认"):
                await http.post(f"http://127.0.0.1:{port}/sandbox/messages", json={"from": "op1", "text": said})
        deadline = time.monotonic() + 30
        while "sending" not in by_status(topic_only=False) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # 10 a second (welcomes first, then the topic): about 10 under way
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0  # it stops by itself, well before the 60 s lease
        stopped = by_status(topic_only=False)
        assert "sending" not in stopped and stopped["delivered"] > 0 and stopped["pending"] > 0
        proc = start()
        await ready(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while by_status() != {"delivered": 100} and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert by_status() == {"delivered": 100}  # the rest, at once after the restart: no lease to wait out
        with engine.connect() as conn:
            once = Counter(conn.execute(select(Delivery.group_id).where(Delivery.status == "delivered")).scalars())
        assert len(once) == 100 and set(once.values()) == {1}
    finally:
        stop_process(proc)
        engine.dispose()
