"""Filters decide whether a handler wants an update. Any ``Callable[[Update], bool]`` is one.

    @router.message(filters.Text("签到", "打卡"), filters.group)
    async def checkin(ctx: Context) -> None: ...
"""
from __future__ import annotations

import re
from collections.abc import Callable

from bot.update import Update

Filter = Callable[[Update], bool]


class Text:
    """The message is exactly one of ``values`` (surrounding spaces ignored)."""

    def __init__(self, *values: str) -> None:
        self.values = frozenset(v.strip() for v in values)

    def __call__(self, update: Update) -> bool:
        return update.text is not None and update.text.strip() in self.values


class StartsWith:
    """The message starts with one of ``prefixes`` (for "兑换 3" style keywords)."""

    def __init__(self, *prefixes: str) -> None:
        self.prefixes = tuple(prefixes)

    def __call__(self, update: Update) -> bool:
        return update.text is not None and update.text.strip().startswith(self.prefixes)


class Regex:
    def __init__(self, pattern: str | re.Pattern[str]) -> None:
        self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern

    def __call__(self, update: Update) -> bool:
        return update.text is not None and self.pattern.search(update.text) is not None


def private(update: Update) -> bool:
    """A one-to-one chat with the brand account."""
    return update.chat is None


def group(update: Update) -> bool:
    """A group chat."""
    return update.chat is not None
