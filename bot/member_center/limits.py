"""A fixed-window counter per key: at most ``limit`` hits a window (one process's memory)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class Window:
    """``allow(key, now)`` is False once ``key`` had ``limit`` hits in the current window of
    ``seconds``. Keys idle for a window are forgotten, so the table holds only recent keys
    (a crowd of addresses cannot grow it without bound)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self._hits: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()  # key: (window start, hits)

    def __len__(self) -> int:
        return len(self._hits)

    def allow(self, key: Hashable, now: float) -> bool:
        while self._hits:  # oldest window first
            first, (start, _) = next(iter(self._hits.items()))
            if start > now - self.seconds:
                break
            del self._hits[first]
        start, hits = self._hits.pop(key, (now, 0))
        if start <= now - self.seconds:  # its window ended: a new one starts now
            start, hits = now, 0
        self._hits[key] = (start, hits + 1)  # last hit last: the front is the longest idle
        return hits < self.limit
