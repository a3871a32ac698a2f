"""Engines and transactions for SQLite (embedded default) and PostgreSQL (production).

SQLite has one writer. Rather than let writers collide and spin in SQLite's busy handler
(sleeps of up to 100 ms that wreck latency), write transactions queue on an asyncio lock in
this process and start with ``BEGIN IMMEDIATE``; reads use their own pool and never wait for
the writer (WAL). PostgreSQL runs write transactions concurrently; rows are locked by the
statements themselves.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy.exc
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from storage.sqlite_driver import OneTripConnection
from storage.sqlite_driver import dbapi as one_trip_sqlite

# aiosqlite logs every statement with its parameters at DEBUG: secrets (access tokens) would
# reach the logs of anyone who turns DEBUG on. Its statements are ours to log, not its.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


class DatabaseURLError(ValueError):
    """The storage URL names a database siyu does not support."""


class DatabaseBusy(Exception):
    """The database would not take the work now (connections refused or used up, a deadlock or a
    serialization failure, SQLite's writer held by someone else), even after a few tries: a
    moment later it may. Nothing was committed; the caller answers 503 and the sender retries."""

    retry_after_s = 2


SQLITE_BUSY_TIMEOUT_MS = 5000
# SQLSTATE classes and codes that say "try again": connection exceptions (08), too many
# connections (53300), serialization failure (40001), deadlock (40P01), the server shutting down
# or starting (57P01, 57P02, 57P03).
TRANSIENT_SQLSTATES = ("08", "53300", "40001", "40P01", "57P01", "57P02", "57P03")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database being busy or away for a moment, rather than a bug."""
    if isinstance(exc, DatabaseBusy | sqlalchemy.exc.TimeoutError):  # the pool had no connection free
        return True
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    original = exc.orig
    if isinstance(original, sqlite3.OperationalError):  # another process holds the writer
        return "locked" in str(original).lower() or "busy" in str(original).lower()
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(TRANSIENT_SQLSTATES)
    # psycopg without an SQLSTATE: the server could not be reached at all (refused, reset).
    return type(original).__module__.startswith("psycopg") and type(original).__name__ == "OperationalError"


def parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseURLError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name()
    if backend == "sqlite":
        if driver not in ("pysqlite", "aiosqlite"):
            raise DatabaseURLError(f"unsupported SQLite driver {driver!r}; use sqlite:///path.db")
        if not parsed.database or parsed.database == ":memory:":
            raise DatabaseURLError("SQLite needs a file (sqlite:///siyu.db); an in-memory database is not shared")
        return parsed
    if backend == "postgresql":
        if parsed.drivername not in ("postgresql", "postgresql+psycopg"):
            raise DatabaseURLError(f"unsupported PostgreSQL driver {driver!r}; use postgresql+psycopg://")
        return parsed
    raise DatabaseURLError(f"unsupported database {backend!r}; siyu supports SQLite and PostgreSQL")


def async_url(url: str) -> URL:
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed.set(drivername="postgresql+psycopg")


def sync_url(url: str) -> URL:
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    return parsed.set(drivername="postgresql+psycopg")


# A connection option: this session runs one statement and needs no explicit transaction.
ONE_STATEMENT = "siyu_one_statement"


def install_sqlite_pragmas(sync_engine: Any, *, immediate: bool) -> None:
    """WAL, NORMAL sync, a busy timeout and foreign keys on every connection."""

    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Any) -> None:
        if conn.get_execution_options().get(ONE_STATEMENT):
            return  # a lone SELECT is its own snapshot (``Database.read_one``)
        begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
        if isinstance(adapted := conn.connection.dbapi_connection, OneTripConnection):
            adapted.begin_with_next(begin)  # said with the first statement, on its trip
        else:  # the synchronous engines (migrations, the scheduler's job store)
            conn.exec_driver_sql(begin)


class Database:
    """The process's handle on the database: a write path, a read path and the dialect."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = async_url(url)
        self.dialect = self.url.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        if self.is_sqlite:
            # One writer connection: SQLite allows no more, and the lock below orders them.
            self.engine: AsyncEngine = create_async_engine(self.url, echo=echo, pool_size=1, max_overflow=0,
                                                           module=one_trip_sqlite())
            install_sqlite_pragmas(self.engine.sync_engine, immediate=True)
            # Readers: a fixed pool, no overflow. An overflow connection is closed when it comes
            # back, so under load each one taken was a new connection, a new aiosqlite thread and
            # its pragmas: the member center's p99 fell from ~110 to ~80 ms without them
            # (bench/README.md, issue 19). A reader beyond eight waits for one.
            self.read_engine: AsyncEngine = create_async_engine(self.url, echo=echo, pool_size=8, max_overflow=0,
                                                                module=one_trip_sqlite())
            install_sqlite_pragmas(self.read_engine.sync_engine, immediate=False)
        else:
            # All kept open (no overflow): an overflow connection is closed when it comes back,
            # and a new PostgreSQL connection costs a fork on the server and an authentication.
            self.engine = create_async_engine(self.url, echo=echo, pool_size=2 * pool_size, max_overflow=0,
                                              pool_pre_ping=True)
            self.read_engine = self.engine
        # Write connections at once: SQLite's one writer, or PostgreSQL's pool.
        self.connections = 1 if self.is_sqlite else 2 * pool_size
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._writer = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        self._reader = async_sessionmaker(self.read_engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        Keep it short and never await network I/O inside it (on SQLite it holds the only writer).
        """
        if self._write_lock is not None:
            async with self._write_lock:
                async with self._writer() as session, session.begin():
                    yield session
        else:
            async with self._writer() as session, session.begin():
                yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only snapshot; on SQLite it does not wait for the writer."""
        async with self._reader() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read_one(self) -> AsyncIterator[AsyncSession]:
        """``read`` for one statement (a page's read): on SQLite that statement is its own
        snapshot, so no BEGIN and COMMIT, two trips to the driver's thread. A second
        statement could see a later snapshot: use ``read`` for more than one."""
        if not self.is_sqlite:
            async with self.read() as session:
                yield session
            return
        async with self._reader() as session:
            await session.connection(execution_options={ONE_STATEMENT: True})
            yield session

    async def ping(self) -> None:
        async with self.read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
