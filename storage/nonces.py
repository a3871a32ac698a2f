"""Nonces of signed requests (the bridge's), seen once across every process: a replay within
the replay window is refused wherever it arrives; nonces older than the window are let go."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from storage.types import utc_field


class SeenNonce(SQLModel, table=True):
    """A nonce a channel has accepted, with when."""

    __tablename__ = "seen_nonces"
    __table_args__ = (Index("ix_seen_nonces_at", "seen_at"),)

    channel: str = Field(max_length=32, primary_key=True)
    nonce: str = Field(max_length=128, primary_key=True)
    seen_at: datetime = utc_field()
