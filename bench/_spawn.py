"""Shared by the benchmarks: a fresh database for a spawned ``siyu run``."""
from __future__ import annotations

import tempfile
from pathlib import Path


def fresh_database(database_url: str | None) -> tuple[Path, str]:
    """A scratch folder and a database URL: a new SQLite file there, or ``database_url`` (a
    PostgreSQL database whose public schema is wiped)."""
    workdir = Path(tempfile.mkdtemp(prefix="siyu-bench-"))
    if not database_url:
        return workdir, f"sqlite:///{workdir / 'bench.db'}"
    from sqlalchemy import create_engine, text

    from storage.engine import sync_url

    engine = create_engine(sync_url(database_url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return workdir, database_url
