"""Column types and field helpers shared by the tables."""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field

# SQLAlchemy's SQLite DATETIME storage format: stored text sorts and compares as time does.
SQLITE_FORMAT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no timezone support and hands back naive datetimes; storing UTC and
    re-attaching the zone on the way out keeps comparisons in Python correct on every backend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use an aware datetime")
        value = value.astimezone(UTC)
        # SQLite stores the text as given; drop the zone so every row sorts the same way.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, straight to the text SQLAlchemy's DATETIME stores (its default format), in
        one call: a sign-in binds a dozen timestamps, and the two layers (this type, then
        DATETIME's) were a tenth of a batch's time on the event loop."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column; use an aware datetime")
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            return SQLITE_FORMAT % (value.year, value.month, value.day, value.hour, value.minute, value.second,
                                    value.microsecond)

        return process

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_field(**kw: Any) -> Any:
    """A field stored in a ``UTCDateTime`` column (``Field`` keyword arguments pass through)."""
    return Field(sa_type=UTCDateTime, **kw)

