"""Fixtures. Every test runs on SQLite; with ``SIYU_TEST_DATABASE_URL`` set (CI sets it) the
whole suite runs on that PostgreSQL database instead, and the storage contract runs on both."""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.builtin import FEATURES, config_from_dict
from bot.config import Config
from bot.feature import Feature
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import FakeWeCom
from storage import migrate
from storage.engine import Database, sync_url

PG_URL = os.environ.get("SIYU_TEST_DATABASE_URL") or None


def reset_postgres(url: str) -> None:
    engine = create_engine(sync_url(url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def fresh_database(backend: str, tmp_path: Path) -> str:
    if backend == "postgresql":
        assert PG_URL is not None
        reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite:///{tmp_path / 'siyu-test.db'}"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """An empty database: PostgreSQL when the suite runs on it, else a fresh SQLite file."""
    return fresh_database("postgresql" if PG_URL else "sqlite", tmp_path)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The test database, migrated, as the app would open it."""
    await asyncio.to_thread(migrate.upgrade, database_url)
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def on_postgres() -> bool:
    return PG_URL is not None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_config(database_url: str) -> Callable[..., Config]:
    """A config on the test database; ``features`` (default: the ones siyu ships) are what the app is made of."""
    def make(*, features: tuple[Feature, ...] = FEATURES, **sections: Any) -> Config:
        data: dict[str, Any] = {"storage": {"url": database_url}, "logging": {"level": "WARNING"}}
        for name, values in sections.items():
            if isinstance(values, dict):
                data.setdefault(name, {}).update(values)
            else:  # a list of tables ([[rewards]], [[tasks]] ...)
                data[name] = values
        if data.get("wecom", {}).get("enabled") and "public_url" not in data.get("server", {}):
            # WeCom with the member center needs the address its web authorization returns to.
            data.setdefault("server", {})["public_url"] = "http://127.0.0.1:8080"
        return config_from_dict(data, features=features)

    return make


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    """The shipped bot on the test database, admin ``sandbox:op1``."""
    async with sandbox_app(make_config(operators={"admins": ["sandbox:op1"]}), clock=clock) as client:
        yield client


@pytest.fixture
def sqlite_only(on_postgres: bool) -> Iterator[None]:
    if on_postgres:
        pytest.skip("this test is about SQLite behaviour; the suite is running on PostgreSQL")
    yield


# The official sample's callback keys (wecom.md §1.8 V1/V2), used by every WeCom test app.
WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP = ("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo",
                                          "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee")


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeCom]:
    """The fake WeCom server, as the WeCom test apps' corp and secret know it."""
    async with FakeWeCom(corp_id=WECOM_CORP, secret="app-secret") as server:
        yield server


def wecom_section(api_base_url: str, **extra: Any) -> dict[str, Any]:
    """``[wecom]`` of a test app talking to the fake WeCom server at ``api_base_url``."""
    return {"enabled": True, "corp_id": WECOM_CORP, "agent_id": 1000002, "secret": "app-secret", "token": WECOM_TOKEN,
            "encoding_aes_key": WECOM_AES_KEY, "api_base_url": api_base_url, "replay_window_s": 0, **extra}


def stop_process(proc: Any) -> None:
    """SIGTERM (a graceful stop), then SIGKILL after 10 s."""
    import signal
    import subprocess

    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def ready(base: str, timeout: float = 30) -> None:
    """Wait until a spawned siyu answers /healthz."""
    import asyncio
    import time

    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"siyu at {base} did not start")


# Debian's Chromium, driven by Playwright (which never downloads a browser here). As root in a
# sandbox with no network: no setuid sandbox, no background calls home.
CHROMIUM = os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None: they can). CI installs Chromium and sets
    SIYU_REQUIRE_BROWSER=1, so a missing browser fails there instead of skipping."""
    import shutil

    if shutil.which(CHROMIUM) or os.environ.get("SIYU_REQUIRE_BROWSER") == "1":
        return None
    return f"no Chromium at {CHROMIUM} (apt-get install chromium; CI sets SIYU_REQUIRE_BROWSER=1)"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium for the tests that look at pages as a person does."""
    if (reason := browser_missing()) is not None:
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        await chromium.close()
