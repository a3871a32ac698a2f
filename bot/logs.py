"""Log lines for people or for log collectors (``[logging] format``), and the update they concern.

With ``format = "json"`` each record is one JSON object on one line: ``time``, ``level``,
``logger``, ``message``, and ``update`` (the key of the inbound update being handled) on every
line logged while the dispatcher handles that update, whichever module logged it. So a
collector can gather everything one message caused without parsing free text. ``text`` keeps
the classic line for a terminal.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
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


def make_handler(config: LoggingConfig, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing to ``stream`` (default stderr) in ``config.format``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineJson() if config.format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(UpdateFilter())
    return handler


def setup(config: LoggingConfig) -> None:
    """Configure the root logger as ``[logging]`` says (once, like ``logging.basicConfig``)."""
    logging.basicConfig(level=config.level, handlers=[make_handler(config)])
