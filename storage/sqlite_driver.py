"""SQLite through aiosqlite in one trip to its thread per statement.

aiosqlite runs each call on the connection's own thread and SQLAlchemy's adapter makes a call
of each DBAPI step: open a cursor, execute, fetch the rows, close the cursor, and on return to
the pool a rollback even after a commit. A transaction of one statement took nine trips, each a
queue hand-off, a wake-up of the event loop and a future; on the embedded store that was most
of the time of a batch of sign-ins (measured in bench/README.md, 2026-12-07, third session).
Here a statement is one trip (cursor, execute, fetch and close run together on that thread) and
a rollback or commit with no transaction open is none. Everything else is aiosqlite's and
SQLAlchemy's own adapter: errors, the execute mutex, server-side cursors, terminate. The trip is
aiosqlite's ``Connection._execute``, the call each of its public methods wraps (it has no public
way to run several steps at once); tests/test_sqlite_driver.py holds what SQLAlchemy reads back.
"""
from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy.exc
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.ext.asyncio import AsyncSession

Outcome = tuple[Any, list[Any], int, int | None]
R = TypeVar("R")


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool, begin: str | None) -> Outcome:
    """On the connection's thread: the transaction's BEGIN if it is still to be said, then the
    whole statement, its rows read before the cursor closes."""
    if begin is not None:
        conn.execute(begin)
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


@dataclass(slots=True)
class Done:
    """What SQLAlchemy reads of a cursor (the base adapter reads it from ``_cursor``), kept from
    the statement that ran: nothing stays open, the cursor closed on the connection's thread."""

    description: Any = None
    rowcount: int = -1
    lastrowid: int | None = None
    arraysize: int = 1

    def close(self) -> None:
        return None


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A cursor that holds the outcome of its last statement."""

    __slots__ = ()
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:  # no trip to open one
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = Done()  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()

    async def _trip(self, operation: Any, parameters: Any, many: bool) -> None:
        adapted = self._adapt_connection
        async with adapted._execute_mutex:
            conn, begin = self._connection, adapted.take_begin()  # type: ignore[attr-defined]
            description, rows, rowcount, lastrowid = await conn._execute(
                lambda: _run(conn._conn, operation, parameters, many, begin))
        self._cursor = Done(description, rowcount, lastrowid, self._cursor.arraysize)  # type: ignore[assignment]
        self._rows = collections.deque(rows)

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._trip(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._trip(operation, seq_of_parameters, True)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_begin",)
    _cursor_cls = OneTripCursor  # type: ignore[assignment]  # a subclass; mypy checks the constructors too

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None

    def begin_with_next(self, begin: str) -> None:
        """Open the transaction with ``begin`` in the trip of its first statement, not a trip
        of its own: on SQLite's one writer, a batch holds the writer one trip less (under load
        a trip waits its turn of the event loop: BEGIN IMMEDIATE took 2-4 ms)."""
        self._begin = begin

    def take_begin(self) -> str | None:
        """The BEGIN still to be said, once: the trip that takes it opens the transaction."""
        begin, self._begin = self._begin, None
        return begin

    def _idle(self) -> bool:
        """No transaction open: a rollback or commit would change nothing (the pool rolls back
        every connection it takes back, committed or not)."""
        return self._connection._connection is not None and not self._connection.in_transaction

    def rollback(self) -> None:
        self._begin = None  # a transaction that ran no statement never began
        if not self._idle():
            super().rollback()

    def commit(self) -> None:
        self._begin = None
        if not self._idle():
            super().commit()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy adapts it, with ``OneTripConnection`` for its connections."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDBAPI:
    """The module to give ``create_async_engine(..., module=...)`` for an SQLite URL."""
    import aiosqlite

    return OneTripDBAPI(aiosqlite, sqlite3)


async def in_one_trip(session: AsyncSession, work: Callable[[sqlite3.Connection], R]) -> R:
    """Run ``work`` on the connection's thread with its sqlite3 connection, inside the session's
    transaction: several statements, the later built from what the earlier returned, for one
    trip instead of one each. ``work`` writes its own SQL and binds values as SQLite stores
    them. Its errors come back as SQLAlchemy's (``storage.engine.is_transient`` reads them)."""
    await session.flush()  # what the ORM holds unwritten goes first, as before any statement
    connection = await session.connection()
    adapted = (await connection.get_raw_connection()).dbapi_connection
    if not isinstance(adapted, OneTripConnection):
        raise TypeError("in_one_trip needs the SQLite engine of storage.engine")
    async with adapted._execute_mutex:
        aio, begin = adapted._connection, adapted.take_begin()

        def run() -> R:
            if begin is not None:
                aio._conn.execute(begin)
            return work(aio._conn)

        try:
            return await aio._execute(run)
        except sqlite3.Error as exc:
            raise sqlalchemy.exc.DBAPIError.instance(getattr(work, "__name__", "?"), None, exc, sqlite3.Error) from exc


__all__ = ["OneTripConnection", "OneTripCursor", "dbapi", "in_one_trip"]
