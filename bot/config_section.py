"""The base of every config section, and validators several sections share."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # strict: TOML has real types, so "8080" for a port is a mistake worth naming.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def zone_name(value: str) -> str:
    """An IANA time zone name, or ValueError naming the mistake."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
    return value
