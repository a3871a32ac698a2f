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

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.outbox import MERGED, MERGED_BYTES, PENDING, Claimed, T
from storage.sql import ids_in

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


def _text(rows: list[Claimed], more: list[str] | None = None) -> str:
    head, sep = str(rows[0].meta.get("head", "")), str(rows[0].meta.get("sep", " "))
    return head + sep.join([str(r.meta["part"]) for r in rows] + (more or []))


def _chunks(rows: list[Claimed]) -> list[list[Claimed]]:
    """``rows`` of one line cut into texts of at most ``MERGED_BYTES``, their sizes added up
    as they go (joining each text anew for every row it takes was quadratic, and it runs in
    the claim's transaction: a rush's hundred groups held SQLite's writer milliseconds longer)."""
    head, sep = (len(str(rows[0].meta.get(k, d)).encode()) for k, d in (("head", ""), ("sep", " ")))
    chunks: list[list[Claimed]] = [[]]
    size = head
    for row in rows:
        part = len(str(row.meta["part"]).encode())
        grown = size + (sep if chunks[-1] else 0) + part
        if chunks[-1] and grown > MERGED_BYTES:
            chunks.append([])
            grown = head + part
        chunks[-1].append(row)
        size = grown
    return chunks


TopUp = dict[int, tuple[Line, str]]  # row → the line it joins and its piece


def lines_of(claimed: list[Claimed]) -> dict[Line, list[list[Claimed]]]:
    """The claim's mergeable rows by line, each line cut into texts of at most MERGED_BYTES."""
    windows: dict[Line, list[Claimed]] = {}
    for c in claimed:
        if (line := _line(c)) is not None:
            windows.setdefault(line, []).append(c)
    return {line: _chunks(rows) for line, rows in windows.items()}


async def waiting(session: AsyncSession, chunked: dict[Line, list[list[Claimed]]], *, now: datetime) -> TopUp:
    """The due rows that still fit in the text of a claimed line (``lines_of`` the claim; one
    that fits in one text), oldest first: what ``merge`` takes in. A read: run it outside the
    writer's transaction, between the claim's and the merge's (``merge`` takes only those still
    pending)."""
    return await _top_up(session, {line: chunks[0] for line, chunks in chunked.items() if len(chunks) == 1},
                         now=now)


async def merge(session: AsyncSession, claimed: list[Claimed], chunked: dict[Line, list[list[Claimed]]],
                waited: TopUp) -> list[Claimed]:
    """Send each mergeable line of the claim as one text: ``meta["head"]`` then the
    ``meta["part"]``s joined by ``meta["sep"]``, split into several texts at ``MERGED_BYTES``;
    a line that fits in one text takes in the rows ``waiting`` found for it that are still
    pending (marked ``merged`` here). The first row of each text carries it (its text
    rewritten, so what is stored is what was sent); the others become ``merged``. A line of
    one row sends that row's own text. ``chunked``: ``lines_of(claimed)``. Run in a write
    transaction after the claim's."""
    joined = await _take(session, waited)
    replaced: dict[int, Claimed] = {}
    absorbed: list[int] = []
    rewrites: list[dict[str, Any]] = []
    for line, chunks in chunked.items():
        for chunk in chunks:
            extra = joined.get(line, []) if len(chunks) == 1 else []
            if len(chunk) + len(extra) < 2:
                continue
            first, text = chunk[0], _text(chunk, [part for _, part in extra])
            meta = {"merged": [r.id for r in chunk[1:]] + [row for row, _ in extra]}
            rewrites.append({"row": first.id, "new_text": text, "new_meta": meta})
            replaced[first.id] = Claimed(first.id, first.channel, first.chat, first.to, text, first.attempts,
                                         first.kind, meta)
            absorbed += [r.id for r in chunk[1:]]
    if rewrites:  # one executemany: the transaction holds SQLite's only writer meanwhile
        await session.execute(update(T).where(T.c.id == bindparam("row"))
                              .values(text=bindparam("new_text"), meta=bindparam("new_meta", type_=JSON)), rewrites)
    if absorbed:
        await session.execute(update(T).where(T.c.id.in_(absorbed)).values(status=MERGED, claimed_until=None))
    gone = set(absorbed)
    return [replaced.get(c.id, c) for c in claimed if c.id not in gone]


async def _top_up(session: AsyncSession, lines: dict[Line, list[Claimed]], *, now: datetime) -> TopUp:
    """The due rows of ``lines`` (each fits in one text) that still fit in it, oldest first, as
    row → (line, piece): neither claimed nor decoded (a busy group's backlog is two thousand
    rows, and reading them back whole held SQLite's writer for 50 ms)."""
    # Bytes of each line that still has room in one text.
    size = {line: n for line, rows in lines.items() if (n := len(_text(rows).encode())) <= MERGED_BYTES}
    # Pending rows only (ix_outbox_due), never a group's delivered history; the exact
    # conversation is checked below. Bounded: a group with thousands queued costs one read.
    chats = sorted({chat for _, chat, _, _ in size if chat is not None})
    if not chats:
        return {}
    # The key and the piece are read out of the JSON by the database: a backlog is thousands
    # of rows, and decoding each one's meta here took tens of milliseconds.
    key, part = T.c.meta["merge"].as_string(), T.c.meta["part"].as_string()
    candidates = (await session.execute(
        select(T.c.id, T.c.channel, T.c.chat, T.c.to, key.label("key"), part.label("part"))
        .where(T.c.status == PENDING, T.c.not_before <= now, T.c.chat.in_(chats), key.is_not(None))
        .order_by(T.c.id).limit(TOP_UP_ROWS * len(size)))).all()
    sep = {line: len(str(lines[line][0].meta.get("sep", " ")).encode()) for line in size}
    taken: TopUp = {}
    for r in candidates:
        line = (r.channel, r.chat, r.to, r.key)
        if line not in size or r.part is None:
            continue
        grown = size[line] + sep[line] + len(r.part.encode())
        if grown > MERGED_BYTES:
            del size[line]  # full: the rest waits for the next text, in order
            continue
        size[line] = grown
        taken[r.id] = (line, r.part)
    return taken


async def _take(session: AsyncSession, taken: TopUp) -> dict[Line, list[tuple[int, str]]]:
    """Mark the rows of ``taken`` merged, as the text that names them is written in the same
    transaction; by line, oldest first. Only those still pending: another pass or process may
    have claimed some since they were read (its UPDATE commits first; this one re-checks the
    status and skips them)."""
    if not taken:
        return {}
    won = await session.execute(update(T).where(ids_in(session, T.c.id), T.c.status == PENDING)
                                .values(status=MERGED, claimed_until=None).returning(T.c.id), {"ids": list(taken)})
    joined: dict[Line, list[tuple[int, str]]] = {}
    for row in sorted(r.id for r in won):
        line, piece = taken[row]
        joined.setdefault(line, []).append((row, piece))
    return joined
