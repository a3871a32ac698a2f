"""The ``siyu`` command line, run as a user runs it: in a child process, from a clean directory.

Every test here uses SQLite files in ``tmp_path`` (whatever ``SIYU_TEST_DATABASE_URL`` says) and an
environment without ``SIYU_*`` variables, so no stray config.toml or overlay is picked up.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

SIYU = Path(sys.executable).parent / "siyu"
PYTHON_M_BOT = [sys.executable, "-m", "bot"]
STARTUP_TIMEOUT_S = 20
STOP_TIMEOUT_S = 10


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    env["PYTHONUNBUFFERED"] = "1"  # "serving on" must reach the pipe at once
    return env


def run(args: Sequence[str], cwd: Path, *, via: Sequence[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(via if via is not None else [str(SIYU)]), *args], cwd=cwd, env=clean_env(),
        capture_output=True, text=True, timeout=60,
    )


def write_config(tmp_path: Path, body: str = "", name: str = "cfg.toml", db: str = "siyu-cli.db") -> Path:
    path = tmp_path / name
    path.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / db}"\n\n[logging]\nlevel = "WARNING"\n{body}',
                    encoding="utf-8")
    return path


def tables(db_file: Path) -> set[str]:
    with sqlite3.connect(db_file) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(params=["siyu", "python -m bot"])
def via(request: pytest.FixtureRequest) -> list[str]:
    return [str(SIYU)] if request.param == "siyu" else PYTHON_M_BOT


def test_console_script_is_installed_next_to_python() -> None:
    assert SIYU.exists(), f"{SIYU} is missing: is the project installed (pip install -e .)?"


# --- help -----------------------------------------------------------------------------------------


def test_help(tmp_path: Path, via: list[str]) -> None:
    result = run(["--help"], tmp_path, via=via)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "usage: siyu" in out
    assert "run" in out and "db" in out
    assert "--config" in out and "SIYU_CONFIG" in out and "config.toml" in out


def test_run_help(tmp_path: Path, via: list[str]) -> None:
    result = run(["run", "--help"], tmp_path, via=via)
    assert result.returncode == 0, result.stderr
    for option in ("--config", "--host", "--port"):
        assert option in result.stdout
    assert not (tmp_path / "siyu.db").exists()  # --help does nothing else


def test_db_upgrade_help(tmp_path: Path, via: list[str]) -> None:
    result = run(["db", "upgrade", "--help"], tmp_path, via=via)
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout and "migrations" in result.stdout
    assert not (tmp_path / "siyu.db").exists()


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run([], tmp_path)
    assert result.returncode == 2
    assert "usage: siyu" in result.stderr


# --- configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["run"], ["db", "upgrade"]])
def test_unknown_key_exits_2_naming_the_key(tmp_path: Path, via: list[str], command: list[str]) -> None:
    write_config(tmp_path, "\n[server]\nprot = 8080\n", name="bad.toml")
    result = run([*command, "--config", "bad.toml"], tmp_path, via=via)
    assert result.returncode == 2, result.stderr
    assert "bad.toml" in result.stderr
    assert "server.prot: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_problem_is_printed(tmp_path: Path) -> None:
    write_config(tmp_path, '\n[server]\nport = "8080"\n\n[texts]\nwelcom_group = "hi"\n', name="bad.toml")
    result = run(["run", "--config", "bad.toml"], tmp_path)
    assert result.returncode == 2
    assert "server.port" in result.stderr and "'8080'" in result.stderr
    assert "texts.welcom_group" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path, via: list[str]) -> None:
    result = run(["run", "--config", "missing.toml"], tmp_path, via=via)
    assert result.returncode == 2
    assert "missing.toml" in result.stderr and "no such file" in result.stderr
    assert not (tmp_path / "siyu.db").exists()  # did not fall back to the defaults


def test_bad_cwd_config_toml_is_reported(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[server\n", encoding="utf-8")
    result = run(["db", "upgrade"], tmp_path)
    assert result.returncode == 2
    assert "config.toml" in result.stderr and "not valid TOML" in result.stderr


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_port_flag_out_of_range_exits_2(tmp_path: Path, port: str) -> None:
    write_config(tmp_path)
    result = run(["run", "--config", "cfg.toml", "--port", port], tmp_path)
    assert result.returncode == 2
    assert "--port" in result.stderr


def test_port_flag_must_be_a_number(tmp_path: Path) -> None:
    result = run(["run", "--port", "http"], tmp_path)
    assert result.returncode == 2
    assert "--port" in result.stderr


# --- siyu db upgrade ------------------------------------------------------------------------------


def test_db_upgrade_creates_the_tables_and_is_repeatable(tmp_path: Path, via: list[str]) -> None:
    write_config(tmp_path)
    db_file = tmp_path / "siyu-cli.db"
    first = run(["db", "upgrade", "--config", "cfg.toml"], tmp_path, via=via)
    assert first.returncode == 0, first.stderr
    assert "revision" in first.stdout
    assert {"members", "outbox", "alembic_version"} <= tables(db_file)

    second = run(["db", "upgrade", "--config", "cfg.toml"], tmp_path, via=via)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert {"members", "outbox"} <= tables(db_file)


def test_db_upgrade_without_config_uses_siyu_db_in_the_working_directory(tmp_path: Path) -> None:
    result = run(["db", "upgrade"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert {"members", "outbox"} <= tables(tmp_path / "siyu.db")


def test_db_upgrade_reads_siyu_config(tmp_path: Path) -> None:
    write_config(tmp_path, name="elsewhere.toml", db="from-env.db")
    env = {**clean_env(), "SIYU_CONFIG": str(tmp_path / "elsewhere.toml")}
    result = subprocess.run([str(SIYU), "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "outbox" in tables(tmp_path / "from-env.db")
    assert not (tmp_path / "siyu.db").exists()


# --- siyu run -------------------------------------------------------------------------------------


@asynccontextmanager
async def serving(tmp_path: Path, args: Sequence[str]) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Start ``python -m bot run ...``; yield it with its first stdout line once that line arrives
    (or "" if the process ended first). SIGTERM on the way out, killed if it does not stop."""
    stderr = (tmp_path / "stderr.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *PYTHON_M_BOT, "run", *args, cwd=tmp_path, env=clean_env(),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=stderr,
    )
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), STARTUP_TIMEOUT_S)
        except TimeoutError:
            pytest.fail(f"no output within {STARTUP_TIMEOUT_S}s; stderr:\n{(tmp_path / 'stderr.log').read_text()}")
        yield proc, line.decode()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        stderr.close()


async def wait_healthy(session: aiohttp.ClientSession, base: str) -> dict[str, object]:
    """GET /healthz until 200, at most STARTUP_TIMEOUT_S."""
    async def poll() -> dict[str, object]:
        while True:
            try:
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return await resp.json()
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), STARTUP_TIMEOUT_S)


async def test_run_serves_health_and_sandbox_then_stops_on_sigterm(tmp_path: Path) -> None:
    write_config(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with serving(tmp_path, ["--config", "cfg.toml", "--port", str(port)]) as (proc, line):
        assert "serving on" in line, (tmp_path / "stderr.log").read_text()
        assert f"127.0.0.1:{port}" in line and "/sandbox" in line
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            assert await wait_healthy(session, base) == {"status": "ok"}
            async with session.post(f"{base}/sandbox/messages", json={"from": "u1", "text": "/help"}) as resp:
                assert resp.status == 200, await resp.text()
                replies = (await resp.json())["replies"]
        assert len(replies) == 1
        assert replies[0]["to"] == "u1" and replies[0]["chat"] is None
        assert "/help" in replies[0]["text"]

        started = asyncio.get_running_loop().time()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        assert asyncio.get_running_loop().time() - started < STOP_TIMEOUT_S
        assert code == 0, (tmp_path / "stderr.log").read_text()

    # `run` migrated the database it was given, and nothing else.
    assert {"members", "outbox"} <= tables(tmp_path / "siyu-cli.db")
    assert not (tmp_path / "siyu.db").exists()


async def test_run_uses_the_configured_port(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, f"\n[server]\nport = {port}\n")
    async with serving(tmp_path, ["--config", "cfg.toml"]) as (proc, line):
        assert f"127.0.0.1:{port}" in line
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            assert await wait_healthy(session, f"http://127.0.0.1:{port}") == {"status": "ok"}


async def test_run_without_sandbox_does_not_serve_it(tmp_path: Path) -> None:
    write_config(tmp_path, "\n[sandbox]\nenabled = false\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with serving(tmp_path, ["--config", "cfg.toml", "--port", str(port)]) as (_proc, line):
        assert "serving on" in line and "sandbox" not in line
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            assert await wait_healthy(session, base) == {"status": "ok"}
            async with session.post(f"{base}/sandbox/messages", json={"from": "u1", "text": "/help"}) as resp:
                assert resp.status == 404
async def test_port_flag_zero_exits_2(tmp_path: Path) -> None:
    write_config(tmp_path, f"\n[server]\nport = {free_port()}\n")
    async with serving(tmp_path, ["--config", "cfg.toml", "--port", "0"]) as (proc, line):
        assert "serving on" not in line, f"--port 0 was ignored: {line.strip()}"
        assert await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S) == 2



def this_machines_address() -> str | None:
    """An address of this machine that is not loopback (None if it has none): connecting a UDP
    socket sends nothing, it only picks the interface a packet would leave by."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


async def test_the_sandbox_answers_this_machine_only_and_run_warns_when_it_listens_wider(tmp_path: Path) -> None:
    address = this_machines_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    write_config(tmp_path)
    port = free_port()
    async with serving(tmp_path, ["--config", "cfg.toml", "--host", "0.0.0.0", "--port", str(port)]) as (_proc, line):
        assert "serving on" in line
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            await wait_healthy(session, f"http://127.0.0.1:{port}")
            say = {"from": "boss", "text": "/help"}
            # From another address (here this machine's own, not loopback): refused, nothing handled.
            async with session.post(f"http://{address}:{port}/sandbox/messages", json=say) as resp:
                assert resp.status == 403 and "allow_remote" in (await resp.json())["error"]
            # Through a proxy in front (every client would look local): refused too.
            async with session.post(f"http://127.0.0.1:{port}/sandbox/messages", json=say,
                                    headers={"X-Forwarded-For": "203.0.113.9"}) as resp:
                assert resp.status == 403
            async with session.get(f"http://{address}:{port}/sandbox") as resp:
                assert resp.status == 403
            async with session.post(f"http://127.0.0.1:{port}/sandbox/messages", json=say) as resp:
                assert resp.status == 200
    warning = (tmp_path / "stderr.log").read_text()
    assert "sandbox" in warning and "0.0.0.0" in warning and "enabled = false" in warning
    with sqlite3.connect(tmp_path / "siyu-cli.db") as db:
        assert db.execute("SELECT count(*) FROM inbox").fetchone() == (1,)  # the local one only


async def test_a_taken_port_says_how_to_choose_another_and_the_log_names_the_config(tmp_path: Path) -> None:
    (tmp_path / "cfg.toml").write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "siyu-cli.db"}"\n', encoding="utf-8")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with serving(tmp_path, ["--config", "cfg.toml", "--port", str(port)]) as (proc, _line):
            code = await asyncio.wait_for(proc.wait(), STARTUP_TIMEOUT_S)
    stderr = (tmp_path / "stderr.log").read_text()
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in stderr and "--port" in stderr
    assert f"config: read {(tmp_path / 'cfg.toml').resolve()}" in stderr
