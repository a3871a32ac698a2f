"""Compressed request bodies are refused, never inflated: aiohttp would inflate them on the event
loop before siyu's 1 MB cap saw them, so one client sending gzip bombs stalled every request."""
from __future__ import annotations

import gzip
import zlib

import pytest
from sqlalchemy import func, select

from bot.testing import SandboxClient
from storage.models import InboundUpdate, OutboxMessage

# 1 MB of zeros in 1 KB: what is sent is small, what it would inflate to is not.
BOMB = gzip.compress(b"\0" * 1_000_000)


@pytest.mark.parametrize("encoding, body", [
    ("gzip", gzip.compress(b'{"from": "u1", "chat": null, "text": "/help"}')),
    ("deflate", zlib.compress(b'{"from": "u1", "chat": null, "text": "/help"}')),
    ("gzip", BOMB),
    ("br", b"\x0b"),
])
async def test_a_compressed_body_is_refused_and_changes_nothing(bot: SandboxClient, encoding: str, body: bytes) -> None:
    for path in ("/sandbox/messages", "/api/members", "/wecom/callback", "/console/login"):
        resp = await bot.http.post(path, data=body, headers={"Content-Encoding": encoding,
                                                             "Content-Type": "application/json"})
        assert resp.status == 415, (path, resp.status, await resp.text())
        assert "compressed" in (await resp.json())["error"]
    async with bot.db.read() as s:
        assert (await s.execute(select(func.count()).select_from(InboundUpdate))).scalar_one() == 0
        assert (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 0
    # The same message sent plainly is handled.
    assert (await bot.say("u1", "/help"))[0]["to"] == "u1"
