"""The embedded store's driver (``storage.sqlite_driver``) runs a statement in one trip to
aiosqlite's thread; what SQLAlchemy reads of a cursor must be what it reads of the stock one:
rows, row counts, errors, and a transaction that failed is rolled back."""
from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage.engine import Database


@pytest.fixture
async def db() -> Database:
    database = Database(f"sqlite:///{Path(tempfile.mkdtemp()) / 'driver.db'}")
    async with database.transaction() as s:
        await s.execute(text("CREATE TABLE stock (id INTEGER PRIMARY KEY, name TEXT UNIQUE, units INTEGER)"))
    yield database
    await database.dispose()


async def test_rows_counts_and_ids_come_back_as_sqlalchemy_reads_them(db: Database) -> None:
    async with db.transaction() as s:
        await s.execute(text("INSERT INTO stock (name, units) VALUES (:n, :u)"),
                        [{"n": "杯子", "u": 3}, {"n": "帆布袋", "u": 0}, {"n": "T恤", "u": 5}])
        taken = await s.execute(text("UPDATE stock SET units = units - 1 WHERE units > 0"))
        assert taken.rowcount == 2  # a conditional update's count: what "never oversell" checks
        made = await s.execute(text("INSERT INTO stock (name, units) VALUES ('贴纸', 9) RETURNING id, name"))
        assert made.one() == (4, "贴纸")
    async with db.read() as s:
        rows = (await s.execute(text("SELECT name, units FROM stock ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [("杯子", 2), ("帆布袋", 0), ("T恤", 4), ("贴纸", 9)]


async def test_a_failed_statement_raises_and_its_transaction_leaves_nothing(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO stock (name, units) VALUES ('杯子', 1)"))
            await s.execute(text("INSERT INTO stock (name, units) VALUES ('杯子', 2)"))
    async with db.transaction() as s:  # the only writer is free again, and nothing was kept
        assert (await s.execute(text("SELECT count(*) FROM stock"))).scalar_one() == 0
        await s.execute(text("INSERT INTO stock (name, units) VALUES ('杯子', 1)"))
    async with db.read_one() as s:
        assert (await s.execute(text("SELECT units FROM stock"))).scalar_one() == 1


async def test_a_block_that_raises_rolls_back_what_it_wrote(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO stock (name, units) VALUES ('杯子', 1)"))
            raise RuntimeError("a handler failed")
    async with db.read() as s:
        assert (await s.execute(text("SELECT count(*) FROM stock"))).scalar_one() == 0


async def test_a_write_transaction_holds_the_writer_from_its_first_statement(db: Database) -> None:
    # Its BEGIN IMMEDIATE goes with the first statement: a transaction that only read so far
    # already keeps another process from writing (a deferred BEGIN would let it in, and this
    # transaction's own write would then fail as busy).
    other = sqlite3.connect(db.url.database or "", timeout=0, isolation_level=None)
    try:
        async with db.transaction() as s:
            assert (await s.execute(text("SELECT count(*) FROM stock"))).scalar_one() == 0
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            await s.execute(text("INSERT INTO stock (name, units) VALUES ('杯子', 1)"))
        other.execute("BEGIN IMMEDIATE")  # committed: the writer is free
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_transaction_that_ran_nothing_leaves_the_next_one_whole(db: Database) -> None:
    async with db.transaction():
        pass  # nothing said: its BEGIN never went out
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await s.execute(text("INSERT INTO stock (name, units) VALUES ('杯子', 1)"))
            await s.execute(text("INSERT INTO stock (name, units) VALUES ('杯子', 2)"))
    async with db.read() as s:  # the failed one was one transaction: nothing of it stayed
        assert (await s.execute(text("SELECT count(*) FROM stock"))).scalar_one() == 0
