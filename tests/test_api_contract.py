"""The REST API against its own OpenAPI file: schemathesis generates requests from the schema
and checks every answer (no 5xx, documented status codes, bodies that match their schemas)
against a real ``siyu run`` process."""
from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis.core.parameters import ParameterLocation

OPENAPI = Path(__file__).resolve().parent.parent / "bot" / "api" / "openapi.json"
TOKEN = "contract-test-admin-token-0123456789"
schema = schemathesis.openapi.from_path(str(OPENAPI))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("api")
    (folder / "config.toml").write_text(
        f'[api]\ntokens = [{{ token = "{TOKEN}", role = "admin", name = "contract" }}]\n'
        '[[rewards]]\nname = "保温杯"\ncost = 100\nstock = 5\n'
        '[broadcasts]\nmember_center_url = "https://vip.example.com"\n', encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SIYU_STORAGE_URL": f"sqlite:///{folder / 'api.db'}", "SIYU_LOGGING_LEVEL": "WARNING",
           "SIYU_CONFIG": str(folder / "config.toml")}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env, cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        # `siyu run` prints its one stdout line once it listens (bot.serve): wait for that line.
        assert proc.stdout is not None
        with selectors.DefaultSelector() as ready:
            ready.register(proc.stdout, selectors.EVENT_READ)
            if not ready.select(timeout=30):
                raise AssertionError("siyu did not start within 30 s")
        line = proc.stdout.readline()
        assert "serving on" in line, f"siyu did not start: {line!r}"
        for who in ("u1", "u2"):  # members and a group for the generated requests to find
            requests.post(f"{base}/sandbox/messages", json={"from": who, "chat": "g1", "text": "签到"}, timeout=5)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_contract(case: schemathesis.Case, server: str) -> None:
    # A query parameter whose value is an empty list or None is not sent at all (requests drops
    # it), so such a "schema-violating" case never reaches the server: it tests nothing.
    assume(not any(value == [] or value is None for value in (case.query or {}).values()))
    # Every request is sent with the token (below): a case whose fault is a missing
    # Authorization header is made valid by it, and an answer of 200 is then right.
    assume(not (case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
                and "Authorization" not in (case.headers or {})))
    # A request line over the HTTP server's 8 KB limit is refused by aiohttp itself, in plain
    # text, before siyu sees it: such a case tests the HTTP library, not this contract.
    url = requests.Request(case.method, f"{server}{case.formatted_path}", params=case.query).prepare().url
    assume(url is not None and len(url) < 8000)
    case.call_and_validate(base_url=server, headers={"Authorization": f"Bearer {TOKEN}"})
