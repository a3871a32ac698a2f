"""Rows that go out as one text: a feature's acknowledgements to one group (the sign-ins of a
digest window) carry ``meta["merge"]`` (a key), ``meta["part"]`` (their piece), ``meta["head"]``
and ``meta["sep"]``, and the delivery worker sends those of one key and conversation as one text.

When a group's rate (``[outbox] group_rate_per_min``) holds its lines back, the rows waiting
for it are many: a claim takes the oldest rows of all groups, so it would hold two or three of
a busy group's and send them as one line, and the rest a line or two at a time, minutes late.
So the claim is topped up: a claimed row with a merge key brings every due row of its key and
conversation that still fits in the same text, and the group hears everyone who waited in its
next line.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.outbox import MERGED, MERGED_BYTES, PENDING, SENDING, Claimed, T

# A topped-up line looks at this many waiting rows for each line (one text of MERGED_BYTES
# holds about 60 names): a backlog of thousands costs one bounded read.
TOP_UP_ROWS = 120

Line = tuple[str, str | None, str | None, str]


def _line(c: Claimed) -> Line | None:
    """The text a row joins (channel, chat, member, key), or None for a row sent on its own."""
    key, part = c.meta.get("merge"), c.meta.get("part")
    if isinstance(key, str) and isinstance(part, str):
        return (c.channel, c.chat, c.to, key)
    return None


def _text(rows: list[Claimed]) -> str:
    head, sep = str(rows[0].meta.get("head", "")), str(rows[0].meta.get("sep", " "))
    return head + sep.join(str(r.meta["part"]) for r in rows)


async def merge(session: AsyncSession, claimed: list[Claimed], *, now: datetime, lease: timedelta) -> list[Claimed]:
    """Top up the claim's mergeable lines with the rows waiting for them, then send each line
    as one text: ``meta["head"]`` then the ``meta["part"]``s joined by ``meta["sep"]``, split
    into several texts at ``MERGED_BYTES``. The first row of each text carries it (its text
    rewritten, so what is stored is what was sent); the others become ``merged``, in the
    claim's transaction. A line of one row sends that row's own text. Run in the claim's
    transaction."""
    claimed = claimed + await _top_up(session, claimed, now=now, lease=lease)
    windows: dict[Line, list[Claimed]] = {}
    for c in claimed:
        if (line := _line(c)) is not None:
            windows.setdefault(line, []).append(c)
    replaced: dict[int, Claimed] = {}
    absorbed: list[int] = []
    rewrites: list[dict[str, Any]] = []
    for rows in windows.values():
        if len(rows) < 2:
            continue
        chunks: list[list[Claimed]] = [[]]
        for row in rows:
            if chunks[-1] and len(_text([*chunks[-1], row]).encode()) > MERGED_BYTES:
                chunks.append([])
            chunks[-1].append(row)
        for chunk in chunks:
            first, text = chunk[0], _text(chunk)
            meta = {"merged": [r.id for r in chunk[1:]]}
            rewrites.append({"row": first.id, "new_text": text, "new_meta": meta})
            replaced[first.id] = Claimed(first.id, first.channel, first.chat, first.to, text, first.attempts,
                                         first.kind, meta)
            absorbed += [r.id for r in chunk[1:]]
    if rewrites:  # one executemany: the claim holds SQLite's only writer meanwhile
        await session.execute(update(T).where(T.c.id == bindparam("row"))
                              .values(text=bindparam("new_text"), meta=bindparam("new_meta", type_=JSON)), rewrites)
        await session.execute(update(T).where(T.c.id.in_(absorbed)).values(status=MERGED, claimed_until=None))
    gone = set(absorbed)
    return [replaced.get(c.id, c) for c in claimed if c.id not in gone]


async def _top_up(session: AsyncSession, claimed: list[Claimed], *, now: datetime,
                  lease: timedelta) -> list[Claimed]:
    """Claim the due rows of the claimed lines' keys and conversations, oldest first, while
    each line still fits in one text (a line that already needs two takes none)."""
    lines: dict[Line, list[Claimed]] = {}
    for c in claimed:
        if (line := _line(c)) is not None:
            lines.setdefault(line, []).append(c)
    # Bytes of each line that still has room in one text.
    size = {line: n for line, rows in lines.items() if (n := len(_text(rows).encode())) <= MERGED_BYTES}
    # Pending rows only (ix_outbox_due), never a group's delivered history; the exact
    # conversation is checked below. Bounded: a group with thousands queued costs one read.
    chats = sorted({chat for _, chat, _, _ in size if chat is not None})
    if not chats:
        return []
    # The key and the piece are read out of the JSON by the database: a backlog is thousands
    # of rows, and decoding each one's meta here held SQLite's writer for tens of milliseconds.
    key, part = T.c.meta["merge"].as_string(), T.c.meta["part"].as_string()
    candidates = (await session.execute(
        select(T.c.id, T.c.channel, T.c.chat, T.c.to, key.label("key"), part.label("part"))
        .where(T.c.status == PENDING, T.c.not_before <= now, T.c.chat.in_(chats), key.is_not(None))
        .order_by(T.c.id).limit(TOP_UP_ROWS * len(size)))).all()
    sep = {line: len(str(lines[line][0].meta.get("sep", " ")).encode()) for line in size}
    taken: list[int] = []
    for r in candidates:
        line = (r.channel, r.chat, r.to, r.key)
        if line not in size or r.part is None:
            continue
        grown = size[line] + sep[line] + len(r.part.encode())
        if grown > MERGED_BYTES:
            del size[line]  # full: the rest waits for the next text, in order
            continue
        size[line] = grown
        taken.append(r.id)
    if not taken:
        return []
    # Still pending: on PostgreSQL another process may have claimed some since they were read
    # (its UPDATE commits first; this one re-checks the status and skips them).
    result = await session.execute(
        update(T).where(T.c.id.in_(taken), T.c.status == PENDING)
        .values(status=SENDING, claimed_until=now + lease, attempts=T.c.attempts + 1)
        .returning(T.c.id, T.c.channel, T.c.chat, T.c.to, T.c.text, T.c.attempts, T.c.kind, T.c.meta))
    return sorted((Claimed(r.id, r.channel, r.chat, r.to, r.text, r.attempts, r.kind, r.meta or {}) for r in result),
                  key=lambda c: c.id)
