"""The WeCom access token: cached in memory and in the database, shared by every process,
refreshed ahead of expiry by one caller at a time (wecom.md §4.1, §6.5)."""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.clock import Clock
from storage import advisory, tokens
from storage.engine import Database

log = logging.getLogger("siyu.wecom.token")

# Refresh this long before the platform's expiry; WeCom may also revoke a token early.
REFRESH_MARGIN = timedelta(seconds=300)

Fetch = Callable[[], Awaitable[tuple[str, int]]]  # -> (token, expires_in seconds)


def cache_key(corp_id: str, secret: str) -> str:
    """One token per (corp, secret): the app, 客户联系 and 微信客服 secrets each have their own.
    The key holds a digest of the secret, never the secret."""
    return f"wecom:{corp_id}:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"


class TokenCache:
    def __init__(self, db: Database, clock: Clock, key: str, fetch: Fetch) -> None:
        self.db = db
        self.clock = clock
        self.key = key
        self._fetch = fetch
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at: datetime | None = None

    def _fresh(self, expires_at: datetime | None) -> bool:
        return expires_at is not None and expires_at - REFRESH_MARGIN > self.clock.now()

    async def get(self) -> str:
        if self._token is not None and self._fresh(self._expires_at):
            return self._token
        async with self._lock:  # one refresh in this process; the others wait and reuse it
            if self._token is not None and self._fresh(self._expires_at):
                return self._token
            async with self.db.read() as session:
                stored = await tokens.get(session, self.key)
            if stored is not None and self._fresh(stored[1]):
                self._token, self._expires_at = stored
                return stored[0]
            await self._refresh()
            assert self._token is not None
            return self._token

    async def _refresh(self) -> None:
        if self.db.is_sqlite:
            # One process on SQLite; never hold its only writer across a network call.
            token, expires_in = await self._fetch()
            async with self.db.transaction() as session:
                await tokens.put(session, self.key, token, expires_at=self.clock.now() + timedelta(seconds=expires_in))
            self._token, self._expires_at = token, self.clock.now() + timedelta(seconds=expires_in)
            return
        async with self.db.transaction() as session:
            # PostgreSQL: an advisory lock makes the other processes wait, then reuse this token.
            # One process at a time refreshes; the others wait, then reuse what it stored.
            await advisory.lock(session, self.key)
            stored = await tokens.get(session, self.key)
            if stored is not None and self._fresh(stored[1]):
                self._token, self._expires_at = stored
                return
            token, expires_in = await self._fetch()
            expires_at = self.clock.now() + timedelta(seconds=expires_in)
            await tokens.put(session, self.key, token, expires_at=expires_at)
        self._token, self._expires_at = token, expires_at

    async def invalidate(self, token: str) -> None:
        """The platform refused ``token`` (40001/40014/42001): drop it, unless already replaced."""
        async with self._lock:
            if self._token == token:
                self._token = self._expires_at = None
            async with self.db.transaction() as session:
                await tokens.expire(session, self.key, token, now=self.clock.now() - REFRESH_MARGIN)
        log.info("access token refused by WeCom; the next call fetches a new one")
