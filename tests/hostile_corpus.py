"""What the hostile-input corpus (``hostile_inputs.json``) is sent to, and how: every endpoint with
a valid request for it, the hostile values made from their specs, a raw HTTP client for header
bytes no client library sends, and the row counts that must not move."""
from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (every table registered in the metadata)
from bot.testing import SandboxClient

CORPUS: dict[str, Any] = json.loads(Path(__file__).with_name("hostile_inputs.json").read_text(encoding="utf-8"))
# Tables that periodic jobs write whatever requests arrive (rollups, tokens, the scheduler's store),
# and the bridge's nonces: a signed request's nonce is kept whatever its body, so no replay of it passes.
NOT_COUNTED = {"daily_metrics", "group_days", "cohort_retention", "announcements", "apscheduler_jobs",
               "access_tokens", "kf_cursors", "seen_nonces"}
HOSTILE = "@@hostile@@"


def made(spec: Any) -> bytes:
    """The bytes a corpus spec stands for: a string, {"repeat", "times"}, {"hex"}, or a list of them."""
    if isinstance(spec, str):
        return spec.encode()
    if isinstance(spec, list):
        return b"".join(made(part) for part in spec)
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    return (spec["repeat"] * spec["times"]).encode()


def text(spec: Any) -> str:
    return made(spec).decode()


@dataclass(frozen=True)
class Endpoint:
    """A route and a valid request for it; the corpus replaces one part at a time."""

    method: str
    path: str  # the path of the valid request; ``path_numbers``/``path_texts`` name its parameters
    body: dict[str, Any] | None = None  # a valid JSON body
    text_fields: tuple[str, ...] = ()  # dotted: "add.0" is the first item of "add"
    integer_fields: tuple[str, ...] = ()
    other_fields: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()  # query parameters taking a whole number
    texts: tuple[str, ...] = ()  # query parameters taking an id, a name or a search
    free: tuple[str, ...] = ()  # query parameters shown as sent: only control characters are refused
    dates: tuple[str, ...] = ()
    path_numbers: dict[str, str] | None = None  # parameter → its value in ``path``
    path_texts: dict[str, str] | None = None
    form: dict[str, str] | None = None  # a valid console form (the CSRF token is added)
    route: str = ""  # the route's canonical path when ``path`` differs

    @property
    def fields(self) -> tuple[str, ...]:
        return (*self.text_fields, *self.integer_fields, *self.other_fields)

    def with_path(self, name: str, value: str) -> str:
        """``path`` with parameter ``name`` (its value in the valid path) replaced by ``value``."""
        old = {**(self.path_numbers or {}), **(self.path_texts or {})}[name]
        parts = self.path.split("/")
        return "/".join(quote(value, safe="") if p == old else p for p in parts)

    def body_with(self, field: str | None = None, value: bytes = b"") -> bytes:
        """The valid body as JSON, with ``field``'s value replaced by the JSON text ``value``."""
        assert self.body is not None
        data = json.loads(json.dumps(self.body))
        if field is not None:
            *parents, last = field.split(".")
            target = data
            for key in parents:
                target = target[int(key) if isinstance(target, list) else key]
            target[int(last) if isinstance(target, list) else last] = HOSTILE
        raw = json.dumps(data, ensure_ascii=False).encode()
        return raw.replace(json.dumps(HOSTILE).encode(), value) if field is not None else raw


def with_query(path: str, name: str, value: str) -> str:
    return f"{path}{'&' if '?' in path else '?'}{quote(name)}={quote(value, safe='')}"


async def counts(bot: SandboxClient) -> dict[str, int]:
    """Rows in every table a request could write, in one query."""
    tables = [t for t in SQLModel.metadata.sorted_tables if t.name not in NOT_COUNTED]
    query = select(*[select(func.count()).select_from(t).scalar_subquery().label(t.name) for t in tables])
    async with bot.db.read() as session:
        row = (await session.execute(query)).one()
    return dict(zip([t.name for t in tables], row, strict=True))


async def raw_status(bot: SandboxClient, method: str, path: str, headers: list[tuple[str, bytes]],
                     body: bytes = b"") -> int:
    """Send a request as bytes (header values no HTTP client library would send) and read the
    answer's status."""
    server = bot.http.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {server.host}".encode(), b"Connection: close",
             f"Content-Length: {len(body)}".encode(), *(name.encode() + b": " + value for name, value in headers)]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    found = re.match(rb"HTTP/1\.[01] (\d{3})", status_line)
    assert found, f"no HTTP answer: {status_line!r}"
    return int(found.group(1))


class Refusals:
    """Sends hostile requests and notes every one answered with other than a 4xx, or after which
    the database changed; the test asserts there is none."""

    def __init__(self, bot: SandboxClient) -> None:
        self.bot = bot
        self.problems: list[str] = []
        self.sent = 0

    async def check(self, label: str, send: Any) -> None:
        before = await counts(self.bot)
        status = await send()
        after = await counts(self.bot)
        self.sent += 1
        if not 400 <= status < 500:
            self.problems.append(f"{label}: answered {status}")
        changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
        if changed:
            self.problems.append(f"{label}: changed rows {changed}")

    async def request(self, label: str, method: str, path: str, **kw: Any) -> None:
        async def send() -> int:
            resp = await self.bot.http.request(method, path, allow_redirects=False, **kw)
            await resp.read()
            return resp.status

        await self.check(label, send)

    async def raw(self, label: str, method: str, path: str, headers: list[tuple[str, bytes]],
                  body: bytes = b"") -> None:
        async def send() -> int:
            return await raw_status(self.bot, method, path, headers, body)

        await self.check(label, send)
