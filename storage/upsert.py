"""``INSERT ... ON CONFLICT`` for the dialect of a session (SQLite and PostgreSQL share the API)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession, table: Table) -> Any:
    """The dialect's ``insert(table)``. Typed ``Any``: SQLite's and PostgreSQL's ``Insert`` have the same
    ``on_conflict_do_*`` methods and ``excluded``, but no common base class that declares them."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
