"""Log lines for people or for log collectors (``[logging] format``), and the update they concern.

With ``format = "json"`` each record is one JSON object on one line: ``time``, ``level``,
``logger``, ``message``, and ``update`` (the key of the inbound update being handled) on every
line logged while the dispatcher handles that update, whichever module logged it. So a
collector can gather everything one message caused without parsing free text. ``text`` keeps
the classic line for a terminal.

Every time says its zone: JSON in UTC (``...+00:00``), a text line in the community's zone with
its offset (``2026-12-07 09:30:00.123+08:00``), the clock operators read the bot's replies by.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, tzinfo
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from bot.config import LoggingConfig

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The key of the update being handled in this task (None outside handling, and for lines
# about a whole batch). Set by the dispatcher; a context variable, so concurrent updates in
# other tasks keep their own.
UPDATE: ContextVar[str | None] = ContextVar("siyu_update", default=None)


@contextmanager
def handling(update_key: str) -> Iterator[None]:
    """Lines logged inside this block carry ``update_key``."""
    token = UPDATE.set(update_key)
    try:
        yield
    finally:
        UPDATE.reset(token)


class UpdateFilter(logging.Filter):
    """Copies the update being handled onto each record as ``update`` (absent outside handling)."""

    def filter(self, record: logging.LogRecord) -> bool:
        key = UPDATE.get()
        if key is not None and not hasattr(record, "update"):
            record.update = key
        return True


class OneLineJson(JsonFormatter):
    """time, level, logger, message, then ``update`` and any ``extra`` fields; UTC ISO 8601 time;
    Chinese kept readable (not \\u-escaped)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         json_ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class ZonedText(logging.Formatter):
    """The classic text line, its time in ``zone`` with the UTC offset written out: a line read
    on a server in another zone (or in UTC) is not taken for local time."""

    def __init__(self, zone: tzinfo) -> None:
        super().__init__(TEXT_FORMAT)
        self.zone = zone

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, self.zone).isoformat(sep=" ", timespec="milliseconds")


def make_handler(config: LoggingConfig, stream: IO[str] | None = None, *, zone: tzinfo = UTC) -> logging.Handler:
    """A handler writing to ``stream`` (default stderr) in ``config.format``; text lines in ``zone``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineJson() if config.format == "json" else ZonedText(zone))
    handler.addFilter(UpdateFilter())
    return handler


def setup(config: LoggingConfig, zone: tzinfo = UTC) -> None:
    """Configure the root logger as ``[logging]`` says (once, like ``logging.basicConfig``); text
    lines tell the time in ``zone`` (the community's)."""
    logging.basicConfig(level=config.level, handlers=[make_handler(config, zone=zone)])
