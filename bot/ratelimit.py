"""A token bucket: at most ``rate`` acquisitions a second on average, bursts up to ``burst``."""
from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        async with self._lock:  # FIFO: waiters are served in the order they came
            self._refill()
            if self._tokens < 1:
                await asyncio.sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1


class BucketPool:
    """One token bucket per key (a group), created on first use. Idle buckets that have
    refilled are dropped once the pool passes ``max_idle`` keys, so it cannot grow without
    bound (DESIGN §9)."""

    def __init__(self, rate: float, *, burst: float | None = None, max_idle: int = 10_000) -> None:
        self.rate, self.burst, self.max_idle = rate, burst, max_idle
        self._buckets: dict[object, TokenBucket] = {}

    async def acquire(self, key: object) -> None:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_idle:
                self._prune()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        await bucket.acquire()

    def _prune(self) -> None:
        for key, bucket in list(self._buckets.items()):
            bucket._refill()
            if bucket._tokens >= bucket.burst and not bucket._lock.locked():
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
