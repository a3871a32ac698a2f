"""Sessions of the operators' console, kept server-side: signing out or removing a user ends
their sessions at once (the cookie only names the session)."""
from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from storage.types import utc_field


class ConsoleSession(SQLModel, table=True):
    """A console sign-in: valid until it expires or is revoked."""

    __tablename__ = "console_sessions"

    id: str = Field(max_length=64, primary_key=True)  # random, the cookie's (signed) content
    user: str = Field(max_length=64, index=True)
    created_at: datetime = utc_field()
    expires_at: datetime = utc_field()
    revoked_at: datetime | None = utc_field(default=None)
