"""Shared by the benchmarks: a fresh database for a spawned ``siyu run``."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path


def fresh_database(database_url: str | None) -> tuple[Path, str]:
    """A scratch folder and a database URL: a new SQLite file there, or ``database_url`` (a
    PostgreSQL database whose public schema is wiped)."""
    workdir = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    if not database_url:
        return workdir, f"sqlite:///{workdir / 'bench.db'}"
    from sqlalchemy import create_engine, text

    from storage.engine import sync_url

    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return workdir, database_url


def spawn_siyu(database_url: str | None, port: int, config: str = "") -> subprocess.Popen[bytes]:
    """``siyu run`` on ``port`` over a fresh database, with the sandbox on and quiet logs;
    ``config`` is TOML for anything else."""
    import os
    import sys

    workdir, url = fresh_database(database_url)
    (workdir / "config.toml").write_text(config, encoding="utf-8")
    env = {**os.environ, "SIYU_STORAGE_URL": url, "SIYU_LOGGING_LEVEL": "WARNING",
           "SIYU_CONFIG": str(workdir / "config.toml")}
    return subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL)


async def wait_ready(url: str, timeout: float = 30) -> None:
    import asyncio
    import time

    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"server at {url} not ready after {timeout}s")
