"""What ``siyu`` says when the database cannot be used: one sentence naming the problem and what to
do, exit status 2, no traceback; and a second ``siyu run`` on one SQLite file refused.

The PostgreSQL cases run without a PostgreSQL server: a connection refused is a free port, and a
server that refuses a login is a few lines below speaking the protocol's first message.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL
from tests.test_cli import SIYU, clean_env, free_port, run, serving, write_config

COMMANDS = [["db", "upgrade"], ["run", "--port", "1"]]  # run stops before listening: port 1 is never tried
SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


def _error_response(sqlstate: str, message: str) -> bytes:
    fields = ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", sqlstate), (b"M", message))
    body = b"".join(tag + value.encode() + b"\0" for tag, value in fields) + b"\0"
    return b"E" + struct.pack("!I", len(body) + 4) + body


@contextlib.contextmanager
def refusing_postgres(sqlstate: str, message: str) -> Iterator[int]:
    """A PostgreSQL server on a free port that declines encryption and answers every login with
    the FATAL error ``sqlstate``/``message``, as a real one does for a bad password."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                while len(head := conn.recv(8)) == 8:
                    length, code = struct.unpack("!II", head)
                    if code in (SSL_REQUEST, GSSENC_REQUEST):
                        conn.sendall(b"N")
                        continue
                    conn.recv(length - 8)
                    conn.sendall(_error_response(sqlstate, message))
                    break

    threading.Thread(target=answer, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def run_on(url: str, command: list[str], cwd: Path, *,
           pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**clean_env(), "SIYU_STORAGE_URL": url, "SIYU_LOGGING_LEVEL": "WARNING"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath + ((":" + env["PYTHONPATH"]) if env.get("PYTHONPATH") else "")
    return subprocess.run([str(SIYU), *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def assert_told(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_postgres_database_is_named_with_the_command_that_creates_it(tmp_path: Path,
                                                                             command: list[str]) -> None:
    with refusing_postgres("3D000", 'database "siyu" does not exist') as port:
        result = run_on(f"postgresql+psycopg://postgres@127.0.0.1:{port}/siyu", command, tmp_path)
    assert_told(result, f"database siyu does not exist on 127.0.0.1:{port}",
                f"createdb -h 127.0.0.1 -p {port} -U postgres siyu")


@pytest.mark.skipif(PG_URL is None, reason="SIYU_TEST_DATABASE_URL is not set")
def test_missing_database_on_the_real_postgres_server(tmp_path: Path) -> None:
    assert PG_URL is not None
    url = make_url(PG_URL).set(database="siyu_no_such_database")
    result = run_on(url.render_as_string(hide_password=False), ["db", "upgrade"], tmp_path)
    assert_told(result, "database siyu_no_such_database does not exist", "createdb")


@pytest.mark.parametrize("command", COMMANDS)
def test_wrong_password_is_named_without_echoing_it(tmp_path: Path, command: list[str]) -> None:
    with refusing_postgres("28P01", 'password authentication failed for user "siyu"') as port:
        result = run_on(f"postgresql+psycopg://siyu:hunter2secret@127.0.0.1:{port}/siyu", command, tmp_path)
    assert_told(result, "refused user siyu", "password")
    assert "hunter2secret" not in result.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_unreachable_host_is_named(tmp_path: Path, command: list[str]) -> None:
    port = free_port()  # nothing listens there
    result = run_on(f"postgresql+psycopg://postgres@127.0.0.1:{port}/siyu", command, tmp_path)
    assert_told(result, f"cannot reach PostgreSQL on 127.0.0.1:{port}", "refused")


def test_unknown_host_is_named(tmp_path: Path) -> None:
    result = run_on("postgresql+psycopg://postgres@no-such-host.invalid/siyu", ["db", "upgrade"], tmp_path)
    assert_told(result, "no-such-host.invalid")


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_driver_says_what_to_install(tmp_path: Path, command: list[str]) -> None:
    # A psycopg that cannot be imported, first on the path: as on a machine without the extra.
    shadow = tmp_path / "shadow" / "psycopg"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'psycopg\'", name="psycopg")\n')
    result = run_on("postgresql+psycopg://postgres@127.0.0.1/siyu", command, tmp_path,
                    pythonpath=str(tmp_path / "shadow"))
    assert_told(result, "psycopg", "[postgres]")


def test_sqlite_in_a_missing_folder_is_named(tmp_path: Path) -> None:
    result = run_on("sqlite:///no/such/folder/siyu.db", ["db", "upgrade"], tmp_path)
    assert_told(result, "no/such/folder", "does not exist")


# --- one siyu run per SQLite file -----------------------------------------------------------------


async def test_a_second_run_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with serving(tmp_path, ["--config", "cfg.toml", "--port", str(free_port())]) as (_first, line):
        assert "serving on" in line, (tmp_path / "stderr.log").read_text()
        second = await asyncio.to_thread(run, ["run", "--config", "cfg.toml", "--port", str(free_port())], tmp_path)
        assert_told(second, "another siyu process", "siyu-cli.db", "PostgreSQL")
    # The first one stopped: its lock went with it, and a new run starts.
    async with serving(tmp_path, ["--config", "cfg.toml", "--port", str(free_port())]) as (third, line):
        assert "serving on" in line, (tmp_path / "stderr.log").read_text()
        assert third.returncode is None


async def test_db_upgrade_is_not_refused_while_run_serves(tmp_path: Path) -> None:
    write_config(tmp_path)
    async with serving(tmp_path, ["--config", "cfg.toml", "--port", str(free_port())]) as (_proc, line):
        assert "serving on" in line
        result = await asyncio.to_thread(run, ["db", "upgrade", "--config", "cfg.toml"], tmp_path)
        assert result.returncode == 0, result.stderr


async def test_two_runs_on_different_sqlite_files_both_serve(tmp_path: Path) -> None:
    write_config(tmp_path, name="a.toml", db="a.db")
    write_config(tmp_path, name="b.toml", db="b.db")
    async with serving(tmp_path, ["--config", "a.toml", "--port", str(free_port())]) as (_a, line_a), \
            serving(tmp_path, ["--config", "b.toml", "--port", str(free_port())]) as (_b, line_b):
        assert "serving on" in line_a and "serving on" in line_b



# --- the time of a log line -----------------------------------------------------------------------


async def test_log_lines_tell_the_time_in_the_communitys_zone_with_its_offset(tmp_path: Path) -> None:
    write_config(tmp_path, '\n[community]\ntimezone = "Asia/Shanghai"\n')
    config = tmp_path / "cfg.toml"
    config.write_text(config.read_text(encoding="utf-8").replace('level = "WARNING"', 'level = "INFO"'),
                      encoding="utf-8")
    async with serving(tmp_path, ["--config", "cfg.toml", "--port", str(free_port())]) as (_proc, line):
        assert "serving on" in line
    lines = [text for text in (tmp_path / "stderr.log").read_text(encoding="utf-8").splitlines() if " INFO " in text]
    assert lines
    for text in lines:  # 2026-12-07 09:30:00.123+08:00 INFO siyu...: ...
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+08:00 INFO ", text), text
    stamp = datetime.fromisoformat(lines[0].split(" INFO ")[0])
    assert abs((stamp - datetime.now(UTC)).total_seconds()) < 120  # the zone's time, not UTC's digits


def test_an_error_in_a_statement_is_not_passed_off_as_an_unreachable_database() -> None:
    # A bug (a constraint broken, a bad query) keeps its traceback: only failures to connect are explained.
    import sqlite3

    import psycopg

    from storage.preflight import explain

    assert explain(sqlite3.IntegrityError("UNIQUE constraint failed"), "sqlite:///siyu.db") is None
    assert explain(psycopg.errors.UniqueViolation("duplicate key"), "postgresql+psycopg://u@h/d") is None
    assert explain(RuntimeError("a bug"), "postgresql+psycopg://u@h/d") is None
