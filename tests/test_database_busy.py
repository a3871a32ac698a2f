"""A busy or unreachable database is not a bug: the request is answered 503 with Retry-After after
a few quick tries, nothing of it is kept, and the same message id sent again is handled as the
first time (never the apology, never an id used up)."""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

import storage.engine
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage.engine import sync_url
from storage.models import InboundUpdate

API_TOKEN = "busy-test-token-0123456789"
SIGN_IN = {"from": "u1", "chat": "g1", "text": "签到", "id": "m-1"}


async def post(bot: SandboxClient) -> tuple[int, dict[str, str], dict[str, object]]:
    resp = await bot.http.post("/sandbox/messages", json=SIGN_IN)
    return resp.status, dict(resp.headers), await resp.json()


async def the_retry_is_handled_as_the_first_time(bot: SandboxClient) -> None:
    status, _, answer = await post(bot)
    assert status == 200, answer
    [reply] = answer["replies"]  # type: ignore[misc]
    assert "签到成功" in reply["text"]
    async with bot.db.read() as s:
        rows = (await s.execute(select(InboundUpdate))).scalars().all()
    assert [(r.key, r.error) for r in rows] == [("sandbox:msg:u1:m-1", None)]


@pytest.fixture
def held_sqlite_writer(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    """Another process's hold on SQLite's only writer (a backup, a second siyu on the file)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's single writer")
    monkeypatch.setattr(storage.engine, "SQLITE_BUSY_TIMEOUT_MS", 200)  # no 5 s waits in a test
    other = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)

    def hold(on: bool) -> None:
        other.execute("BEGIN IMMEDIATE" if on else "ROLLBACK")

    yield hold
    other.close()


async def test_sqlite_held_by_another_process_answers_503_and_the_retry_works(
    make_config: Callable[..., Config], clock: FakeClock, held_sqlite_writer: Callable[[bool], None],
) -> None:
    async with sandbox_app(make_config(), clock=clock) as bot:
        held_sqlite_writer(True)
        status, headers, answer = await post(bot)
        assert status == 503 and headers["Retry-After"] == "2" and "busy" in str(answer["error"])
        held_sqlite_writer(False)
        async with bot.db.read() as s:
            assert (await s.execute(select(func.count()).select_from(InboundUpdate))).scalar_one() == 0
        await the_retry_is_handled_as_the_first_time(bot)


@pytest.fixture
def postgres_gate(database_url: str) -> Iterator[Callable[[bool], None]]:
    """Close the database to every connection (its own server refuses them), as an outage does."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's connections")
    name = make_url(database_url).database
    admin = create_engine(sync_url(database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")

    def gate(open_: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if open_ else "false"}'))
            if not open_:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})

    yield gate
    gate(True)
    admin.dispose()


async def test_postgresql_refusing_connections_answers_503_and_the_retry_works(
    make_config: Callable[..., Config], clock: FakeClock, postgres_gate: Callable[[bool], None],
) -> None:
    config = make_config(api={"tokens": [{"token": API_TOKEN, "role": "viewer"}]})
    async with sandbox_app(config, clock=clock) as bot:
        postgres_gate(False)
        status, headers, answer = await post(bot)
        assert status == 503 and headers["Retry-After"] == "2", answer
        api = await bot.http.get("/api/members", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert api.status == 503 and (await api.json())["error"]["code"] == "database_busy"
        postgres_gate(True)
        await the_retry_is_handled_as_the_first_time(bot)
