"""``credit_many`` on PostgreSQL in one statement: entries, lots and balances of a batch.

On PostgreSQL most of a batch's time is the client's, per statement (SQLAlchemy and psycopg;
measured in bench/README.md), and a rush of sign-ins credits every batch: its three
statements (entries, then lots and balances from what the entries' insert returned) are one
here, with data-modifying CTEs, the lines passed as arrays (one SQL text whatever their count,
so it is prepared once). SQLite has no such CTEs: ``storage.points`` runs the three there.
The rules are ``credit_many``'s: a used key posts nothing; balances are upserted in member
order (locks taken in one order).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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
                     earn: str) -> list[Any]:
    """Post ``lines`` (``storage.points.Line``; ``held``: each one's lot is pending); one row
    per member whose balance changed: member_id, balance, pending, lifetime and the keys posted (``posted_keys``)."""
    return list(await session.execute(_CREDIT, {
        "members": [x.member_id for x in lines], "amounts": [x.amount for x in lines],
        "kinds": [x.kind for x in lines], "keys": [x.key for x in lines], "reasons": [x.reason for x in lines],
        "issuers": [x.issuer for x in lines], "expires": [x.expires_at for x in lines],
        "available": [x.available_at for x in lines], "held": list(held), "now": now, "earn": earn,
    }))
