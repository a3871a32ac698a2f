"""``credit_many``'s writes in one go: entries, lots and balances of a batch.

A rush of sign-ins credits every batch, and its three statements (entries, then lots and
balances from the ids and keys the entries' insert returned) were most of what a sign-in cost
beyond a chat line: on PostgreSQL each statement's time is mostly the client's (SQLAlchemy and
psycopg), on SQLite each is a trip to the connection's thread and back through the event loop
(bench/README.md, issue 20). Here they are one statement on PostgreSQL (data-modifying CTEs,
the lines passed as arrays: one SQL text whatever their count, so it is prepared once) and one
trip on SQLite (the three statements run together on its thread; SQLite has no such CTEs).
The rules are ``credit_many``'s: a used key posts nothing; balances are upserted in member
order (locks taken in one order).
"""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.sqlite_driver import in_one_trip
from storage.types import UTCDateTime


class Credited(NamedTuple):
    """A member whose balance changed: the row after it, and the keys posted for them."""

    member_id: int
    balance: int
    pending: int
    lifetime: int
    posted_keys: list[str]

_CREDIT = text("""
WITH x AS (
    SELECT * FROM unnest(CAST(:members AS integer[]), CAST(:amounts AS integer[]), CAST(:kinds AS varchar[]),
                         CAST(:keys AS varchar[]), CAST(:reasons AS varchar[]), CAST(:issuers AS varchar[]),
                         CAST(:expires AS timestamptz[]), CAST(:available AS timestamptz[]),
                         CAST(:held AS boolean[]))
        AS x(member_id, amount, kind, key, reason, issuer, expires_at, available_at, held)
), e AS (
    INSERT INTO point_entries (member_id, delta, kind, key, reason, issuer, created_at)
    SELECT member_id, amount, kind, key, reason, issuer, :now FROM x
    ON CONFLICT (key) DO NOTHING
    RETURNING id, key
), posted AS (
    SELECT x.*, e.id AS entry_id FROM x JOIN e ON e.key = x.key
), lots AS (
    INSERT INTO point_lots (member_id, entry_id, amount, remaining, expires_at, available_at, created_at)
    SELECT member_id, entry_id, amount, amount, expires_at, CASE WHEN held THEN available_at END, :now FROM posted
), b AS (
    INSERT INTO point_balances (member_id, balance, pending, lifetime)
    SELECT member_id, sum(CASE WHEN held THEN 0 ELSE amount END), sum(CASE WHEN held THEN amount ELSE 0 END),
           sum(CASE WHEN kind = :earn THEN amount ELSE 0 END)
    FROM posted GROUP BY member_id ORDER BY member_id
    ON CONFLICT (member_id) DO UPDATE SET balance = point_balances.balance + excluded.balance,
        pending = point_balances.pending + excluded.pending, lifetime = point_balances.lifetime + excluded.lifetime
    RETURNING member_id, balance, pending, lifetime
)
SELECT b.member_id, b.balance, b.pending, b.lifetime,
       (SELECT array_agg(key) FROM posted p WHERE p.member_id = b.member_id) AS posted_keys
FROM b
""")


async def credit_all(session: AsyncSession, lines: Sequence[Any], held: Sequence[bool], *, now: datetime,
                     earn: str) -> list[Credited]:
    """Post ``lines`` (``storage.points.Line``, keys distinct; ``held``: each one's lot is
    pending); a ``Credited`` per member whose balance changed."""
    bind = session.bind
    assert bind is not None  # sessions come from storage.engine.Database, bound to its engine
    if bind.dialect.name == "postgresql":
        return [Credited(*r) for r in await session.execute(_CREDIT, {
            "members": [x.member_id for x in lines], "amounts": [x.amount for x in lines],
            "kinds": [x.kind for x in lines], "keys": [x.key for x in lines], "reasons": [x.reason for x in lines],
            "issuers": [x.issuer for x in lines], "expires": [x.expires_at for x in lines],
            "available": [x.available_at for x in lines], "held": list(held), "now": now, "earn": earn,
        })]
    stamp = UTCDateTime().bind_processor(bind.dialect)
    assert stamp is not None  # SQLite's: timestamps as the text it stores
    at = stamp(now)
    entries = [(x.member_id, x.amount, x.kind, x.key, x.reason, x.issuer, at) for x in lines]
    lots = {x.key: (x.member_id, x.amount, x.amount, stamp(x.expires_at), stamp(x.available_at) if h else None, at)
            for x, h in zip(lines, held, strict=True)}
    by_key = {x.key: x for x in lines}
    held_of = {x.key: h for x, h in zip(lines, held, strict=True)}

    def credit(conn: sqlite3.Connection) -> list[Credited]:
        ids = {key: id_ for id_, key in _returning(conn, _ENTRIES, _ENTRIES_END, entries)}
        if not ids:
            return []
        conn.executemany(_LOTS, [(lots[k][0], i, *lots[k][1:]) for k, i in ids.items()])
        posted: dict[int, list[str]] = {}
        for key in ids:
            posted.setdefault(by_key[key].member_id, []).append(key)
        changes = [(m, *_sums(keys, by_key, held_of, earn)) for m, keys in sorted(posted.items())]
        return [Credited(m, b, p, life, posted[m]) for m, b, p, life in
                _returning(conn, _BALANCES, _BALANCES_END, changes)]

    return await in_one_trip(session, credit)


def _returning(conn: sqlite3.Connection, head: str, tail: str, rows: list[tuple[Any, ...]]) -> list[Any]:
    """``head`` VALUES (…), (…) ``tail`` for ``rows``, what RETURNING returns (sqlite3's
    executemany returns no rows), at most ``CHUNK`` rows a statement (SQLite's variable limit)."""
    found: list[Any] = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        marks = "(" + ",".join("?" * len(chunk[0])) + ")"
        values = [v for row in chunk for v in row]
        found += conn.execute(head + ",".join([marks] * len(chunk)) + tail, values).fetchall()
    return found


CHUNK = 1000  # rows of a multi-row VALUES: 7,000 variables, under SQLite's 32,766


def _sums(keys: list[str], by_key: dict[str, Any], held: dict[str, bool], earn: str) -> tuple[int, int, int]:
    """What the posted ``keys`` of one member add: spendable, pending, earned (lifetime)."""
    lines = [by_key[k] for k in keys]
    return (sum(x.amount for x in lines if not held[x.key]), sum(x.amount for x in lines if held[x.key]),
            sum(x.amount for x in lines if x.kind == earn))


_ENTRIES = "INSERT INTO point_entries (member_id, delta, kind, key, reason, issuer, created_at) VALUES "
_ENTRIES_END = " ON CONFLICT (key) DO NOTHING RETURNING id, key"
_LOTS = ("INSERT INTO point_lots (member_id, entry_id, amount, remaining, expires_at, available_at, created_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?)")
_BALANCES = "INSERT INTO point_balances (member_id, balance, pending, lifetime) VALUES "
_BALANCES_END = (" ON CONFLICT (member_id) DO UPDATE SET balance = balance + excluded.balance, "
                 "pending = pending + excluded.pending, lifetime = lifetime + excluded.lifetime "
                 "RETURNING member_id, balance, pending, lifetime")
