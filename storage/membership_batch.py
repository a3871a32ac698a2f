"""The membership stage's writes of a batch at once: members, groups, who spoke in which group,
and who was active that day (``bot.middlewares.membership``).

Every update of every batch passes here, so its statements are paid by every chat line. On
PostgreSQL each statement is a round trip whose time is mostly the client's (SQLAlchemy and
psycopg); there the four upserts are one statement of data-modifying CTEs, the rows passed as
arrays (one SQL text whatever their count, so it is prepared once), the memberships and days
joined to the members and groups the statement itself returns. SQLite has no such CTEs: there
they stay four statements, each a short trip to the connection's thread. The rules are those
of ``storage.community`` (``touch_members``, ``touch_groups``, ``record_spoken``) and
``storage.rollups.record_active``, in the same order (rows locked in key order).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from storage import community, rollups
from storage.community import GroupRef, Key, MemberRef, Sighting

# (group key, member key) -> messages the member said there in this batch
Spoken = Mapping[tuple[Key, Key], int]

_TOUCH = text("""
WITH m AS (
    INSERT INTO members (channel, external_id, name, source_state, status, message_count, first_seen_at,
                         last_seen_at)
    SELECT channel, external_id, name, code, 'active', messages, :now, :now
    FROM unnest(CAST(:m_channels AS varchar[]), CAST(:m_ids AS varchar[]), CAST(:m_names AS varchar[]),
                CAST(:m_codes AS varchar[]), CAST(:m_messages AS integer[]))
        AS x(channel, external_id, name, code, messages)
    ON CONFLICT (channel, external_id) DO UPDATE SET
        name = coalesce(excluded.name, members.name), source_state = coalesce(members.source_state,
        excluded.source_state), last_seen_at = excluded.last_seen_at,
        message_count = members.message_count + excluded.message_count
    RETURNING id, channel, external_id, name, status, message_count
), g AS (
    INSERT INTO chat_groups (channel, external_id, name, status, message_count, created_at, last_active_at)
    SELECT channel, external_id, name, 'active', messages, :now, :now
    FROM unnest(CAST(:g_channels AS varchar[]), CAST(:g_ids AS varchar[]), CAST(:g_names AS varchar[]),
                CAST(:g_messages AS integer[]))
        AS x(channel, external_id, name, messages)
    ON CONFLICT (channel, external_id) DO UPDATE SET
        name = coalesce(excluded.name, chat_groups.name), last_active_at = excluded.last_active_at,
        message_count = chat_groups.message_count + excluded.message_count
    RETURNING id, channel, external_id, name
), gm AS (
    INSERT INTO group_memberships (group_id, member_id, joined_at, last_spoke_at, message_count)
    SELECT g.id, m.id, :now, :now, s.messages
    FROM unnest(CAST(:s_group_channels AS varchar[]), CAST(:s_group_ids AS varchar[]),
                CAST(:s_member_channels AS varchar[]), CAST(:s_member_ids AS varchar[]),
                CAST(:s_messages AS integer[]))
        AS s(group_channel, group_id, member_channel, member_id, messages)
    JOIN g ON g.channel = s.group_channel AND g.external_id = s.group_id
    JOIN m ON m.channel = s.member_channel AND m.external_id = s.member_id
    ORDER BY g.id, m.id
    ON CONFLICT (group_id, member_id) DO UPDATE SET last_spoke_at = excluded.last_spoke_at,
        message_count = group_memberships.message_count + excluded.message_count, left_at = NULL
), d AS (
    INSERT INTO member_days (member_id, day)
    SELECT m.id, :day FROM m
    JOIN unnest(CAST(:d_channels AS varchar[]), CAST(:d_ids AS varchar[])) AS d(channel, external_id)
        ON m.channel = d.channel AND m.external_id = d.external_id
    ORDER BY m.id
    ON CONFLICT DO NOTHING
)
SELECT 'm' AS kind, id, channel, external_id, name, status, message_count FROM m
UNION ALL
SELECT 'g', id, channel, external_id, name, NULL, NULL FROM g
""")


async def touch_all(
    session: AsyncSession, members: dict[Key, Sighting], groups: dict[Key, Sighting], spoken: Spoken,
    speakers: set[Key], *, day: date, now: datetime,
) -> tuple[dict[Key, MemberRef], dict[Key, GroupRef]]:
    """Upsert the batch's ``members`` and ``groups``, add what each member said in each group
    (``spoken``) and mark ``speakers`` active on ``day``; the members' and groups' refs."""
    bind = session.bind
    assert bind is not None  # sessions come from storage.engine.Database, bound to its engine
    if bind.dialect.name != "postgresql":
        touched = await community.touch_members(session, members, now=now)
        in_groups = await community.touch_groups(session, groups, now=now)
        await community.record_spoken(session, {(in_groups[g].id, touched[m].id): n
                                                for (g, m), n in spoken.items()}, now=now)
        await rollups.record_active(session, [touched[k].id for k in speakers], day)
        return touched, in_groups
    m_keys, g_keys, s_keys, d_keys = sorted(members), sorted(groups), sorted(spoken), sorted(speakers)
    rows = await session.execute(_TOUCH, {
        "now": now, "day": day,
        "m_channels": [c for c, _ in m_keys], "m_ids": [e for _, e in m_keys],
        "m_names": [members[k].name for k in m_keys], "m_codes": [members[k].channel_code for k in m_keys],
        "m_messages": [members[k].messages for k in m_keys],
        "g_channels": [c for c, _ in g_keys], "g_ids": [e for _, e in g_keys],
        "g_names": [groups[k].name for k in g_keys], "g_messages": [groups[k].messages for k in g_keys],
        "s_group_channels": [g[0] for g, _ in s_keys], "s_group_ids": [g[1] for g, _ in s_keys],
        "s_member_channels": [m[0] for _, m in s_keys], "s_member_ids": [m[1] for _, m in s_keys],
        "s_messages": [spoken[k] for k in s_keys],
        "d_channels": [c for c, _ in d_keys], "d_ids": [e for _, e in d_keys],
    })
    member_refs: dict[Key, MemberRef] = {}
    group_refs: dict[Key, GroupRef] = {}
    for r in rows:
        if r.kind == "m":
            member_refs[(r.channel, r.external_id)] = MemberRef(r.id, r.channel, r.external_id, r.name, r.status,
                                                                r.message_count)
        else:
            group_refs[(r.channel, r.external_id)] = GroupRef(r.id, r.channel, r.external_id, r.name)
    return member_refs, group_refs
