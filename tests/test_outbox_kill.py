"""A siyu process killed with SIGKILL in the middle of a delivery pass: the process that takes
over sends again only what was in flight at the kill (at most ``[outbox] concurrency``), counted
at a gateway that records every message it got."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from conftest import free_port, ready, stop_process
from sqlalchemy import create_engine, func, insert, select

from storage.engine import sync_url
from storage.models import OutboxMessage

MESSAGES, CONCURRENCY = 100, 4
SECRET = "a-shared-secret-of-more-than-32-characters"


class RecordingGateway:
    """What a bridge gateway sees: every message siyu POSTed, repeats included."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    async def receive(self, request: web.Request) -> web.Response:
        self.ids.append(json.loads(await request.read())["id"])
        return web.json_response({"ok": True})


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[RecordingGateway, str]]:
    recorder, port = RecordingGateway(), free_port()
    app = web.Application()
    app.router.add_post("/send", recorder.receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield recorder, f"http://127.0.0.1:{port}/send"
    await runner.cleanup()


async def test_a_kill_mid_pass_sends_again_at_most_what_was_in_flight(
    tmp_path: Path, database_url: str, gateway: tuple[RecordingGateway, str],
) -> None:
    from storage.migrate import upgrade

    recorder, url = gateway
    upgrade(database_url)
    engine = create_engine(sync_url(database_url))
    now = datetime.now(UTC)
    with engine.begin() as conn:  # one pass's worth, each to its own group so the sends overlap
        conn.execute(insert(OutboxMessage), [
            {"channel": "bridge", "chat": f"g{i}", "text": f"第 {i} 条", "kind": "text", "priority": 0, "meta": {},
             "status": "pending", "attempts": 0, "not_before": now, "created_at": now}
            for i in range(MESSAGES)
        ])
    (tmp_path / "config.toml").write_text(
        f'[bridge]\nenabled = true\nsecret = "{SECRET}"\ngateway_url = "{url}"\nsend_rate_per_s = 50\n'
        f'[outbox]\nbatch_size = {MESSAGES}\nconcurrency = {CONCURRENCY}\nlease_s = 3.0\nsend_timeout_s = 1.0\n'
        '[onboarding]\nenabled = false\n', encoding="utf-8")
    env = {**os.environ, "SIYU_STORAGE_URL": database_url, "SIYU_LOGGING_LEVEL": "WARNING",
           "SIYU_CONFIG": str(tmp_path / "config.toml")}
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def delivered() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).where(OutboxMessage.status == "delivered")).scalar_one()

    proc = start()
    try:
        deadline = time.monotonic() + 30
        while len(recorder.ids) < MESSAGES * 2 // 5 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # no goodbye: the pass's rows stay claimed until the lease ends
        proc.wait(10)
        before_kill = len(recorder.ids)
        assert 0 < before_kill < MESSAGES, "the kill must land mid-pass"
        proc = start()
        await ready(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while delivered() < MESSAGES and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert delivered() == MESSAGES  # nothing lost
        copies = Counter(recorder.ids)
        assert len(copies) == MESSAGES
        doubled = sum(n - 1 for n in copies.values())
        # Only what was in flight at the kill is sent again (rows sent before it were marked).
        assert doubled <= CONCURRENCY, f"{doubled} messages sent twice after the kill ({before_kill} before it)"
    finally:
        stop_process(proc)
        engine.dispose()
