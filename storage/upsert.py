"""``INSERT ... ON CONFLICT`` for the dialect of a session (SQLite and PostgreSQL share the API)."""
from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession, table: Table) -> Any:
    """The dialect's ``insert(table)``. Typed ``Any``: SQLite's and PostgreSQL's ``Insert`` have the same
    ``on_conflict_do_*`` methods and ``excluded``, but no common base class that declares them."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


_BUILT: dict[tuple[str, str, Hashable], Any] = {}


def upsert_for(session: AsyncSession, table: Table, key: Hashable, build: Callable[[Any], Any]) -> Any:
    """``build(insert_for(session, table))``, built once per dialect, table and ``key``: the upserts of
    the hot path (every batch touches members and groups) cost more to build than to run, and
    SQLAlchemy caches a statement's compiled form, not its construction. ``key`` must name
    everything ``build`` depends on."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    stmt = _BUILT.get((dialect, table.name, key))
    if stmt is None:
        stmt = _BUILT[(dialect, table.name, key)] = build(insert_for(session, table))
    return stmt
