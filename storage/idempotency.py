"""Idempotency keys of the REST API: a creating request sent again with the same
``Idempotency-Key`` gets the first answer again instead of creating twice (a proxy's retry, a
client's double click); the same key with another request is refused."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from storage.types import utc_field


class IdempotencyKey(SQLModel, table=True):
    """A creating request already answered, by (client, key)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created", "created_at"),)

    # Who sent it (``api:<token name>``): each client has its own keys.
    actor: str = Field(max_length=160, primary_key=True)
    key: str = Field(max_length=200, primary_key=True)
    # A digest of the method, path and body: the same key with another request is a mistake.
    request_hash: str = Field(max_length=64)
    status: int
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = utc_field()
