"""Fill a PostgreSQL database with a community the size of the console's target, for
``bench/console.py``: 1,000,000 members, 10,000 groups, 30 days of activity.

    python bench/console_data.py                       # postgresql+psycopg://postgres@localhost/siyu_bench
    python bench/console_data.py --members 20000 --groups 200    # a quick one

WIPES the database (``DROP SCHEMA public CASCADE``; the database is created if missing), builds
the schema with the project's migrations, then fills every table the console reads with one
server-side ``INSERT ... SELECT generate_series(...)`` per table (one connection, no parallel
workers). The days are the last ``--days`` local days (Asia/Shanghai) ending today; today's
rows stop at the present minute.

- members: 95% wecom, 5% sandbox; 12 channel codes (渠道A..渠道L, skewed) and 8% with none;
  60% first seen within the days, 40% up to a year before; 3% lost (deleted the contact).
- member_days: each member has a fixed propensity (0.9·u², mean 0.3) to speak on a day they
  exist, 0.85 on their first day: about a quarter of the members on an average day.
- chat_groups / group_memberships: group sizes log-normal around 0.92·members/groups, capped at
  500 (so some are near WeCom's limit); 92% of members in one group (joining within hours of
  their first contact, mostly), 5% in a second; 3% of the groups silent (nobody spoke there in
  the days). Joins, leaves (3%, and every lost member), last_spoke_at from the member's last
  active day.
- checkins (60% of a day's speakers, with real streaks and the 7/30-day bonus), task_checkins
  (12% of speakers; credited, pending, rejected), rewards (5) and redemptions, member_flows
  (92% of the members went through onboarding, 0.5% through KOC screening; all finished, so
  the sweeper has no deadline to fire), KOC applications, two polls with votes, the points
  ledger (an ``earn`` per sign-in and credited task, ``spend``/``refund`` per redemption,
  ``expire`` and ``grant`` entries; lots and balances are left empty), one broadcast a day to
  every group (deliveries: mostly delivered, some awaiting_owner/expired, failed, skipped).
- group_days: each group's snapshot on each past day (members, spoke in the 7 days before,
  message counter), as the nightly rollups would have left them; then the real rollup job
  (``bot.console.rollups.refresh``) runs once for today and everything it finds missing.

Finally ``VACUUM (ANALYZE)``: the tables as autovacuum would keep a month-old database.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ZONE = "Asia/Shanghai"
CODES = [f"渠道{c}" for c in "ABCDEFGHIJKL"]
PRIMES = (1_000_003, 1_000_033, 1_000_037, 999_983, 7_919)


def libpq(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def lit_ts(t: datetime) -> str:
    return f"TIMESTAMPTZ '{t.isoformat()}'"


def lit_date(d: date) -> str:
    return f"DATE '{d.isoformat()}'"


def sql_array(items: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{s}'" for s in items) + "]"


class Generator:
    def __init__(self, conn: psycopg.Connection, *, members: int, groups: int, days: int, seed: int) -> None:
        self.conn = conn
        self.n, self.g, self.d, self.seed = members, groups, days, seed
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.today = self.now.astimezone(ZoneInfo(ZONE)).date()
        self.first = self.today - timedelta(days=days - 1)
        self.rows: dict[str, int] = {}
        self.phases: list[tuple[str, int, float]] = []
        self.prime = next(p for p in PRIMES if members % p)
        # Literals every statement uses (all numbers and dates made here: nothing from outside).
        self.v = {
            "N": str(members), "G": str(groups), "D": str(days),
            "NOW": lit_ts(self.now), "TODAY": lit_date(self.today), "FIRST": lit_date(self.first),
            "START": f"pg_temp.d0({lit_date(self.first)})",  # the first day's midnight
            "MEAN": str(round(0.92 * members / groups, 3)), "P": str(self.prime),
            "CODES": sql_array(CODES),
            "CITIES": sql_array(["上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "南京"]),
        }

    def sql(self, statement: str) -> int:
        for key, value in self.v.items():
            statement = statement.replace("{" + key + "}", value)
        cur = self.conn.execute(statement)  # no parameters: % and : are plain SQL here
        return cur.rowcount

    def secondary_indexes(self, table: str) -> list[tuple[str, str]]:
        """(drop, create) statements of the table's indexes other than its primary key, exactly
        as the migrations made them (unique constraints stay constraints)."""
        out = []
        for name, definition in self.conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'u'",
                (table,)).fetchall():
            out.append((f'ALTER TABLE {table} DROP CONSTRAINT "{name}"',
                        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
        for name, definition in self.conn.execute(
                "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                "WHERE indrelid = %s::regclass AND NOT indisprimary "
                "AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = %s::regclass)",
                (table, table)).fetchall():
            out.append((f"DROP INDEX {name}", definition))
        return out

    def phase(self, name: str, *statements: str, table: str | None = None) -> int:
        """Run the statements, timed. With ``table``, its secondary indexes are dropped first and
        built again after (a sort each, much faster than millions of random index inserts)."""
        t0 = time.perf_counter()
        indexes = self.secondary_indexes(table) if table else []
        for drop, _ in indexes:
            self.conn.execute(drop)
        inserted = other = 0
        for s in statements:
            n = max(self.sql(s), 0)
            head = s.lstrip().upper()
            if head.startswith("INSERT"):
                inserted += n
            elif head.startswith(("UPDATE", "CREATE TEMP TABLE")) and not other:
                other = n  # a draft phase: the first table's rows
        rows = inserted or other
        for _, create in indexes:
            self.conn.execute(create)
        elapsed = time.perf_counter() - t0
        if table:
            self.rows[table] = self.rows.get(table, 0) + rows
        self.phases.append((name, rows, elapsed))
        print(f"  {name:<34} {rows:>11,} rows {elapsed:8.1f} s", flush=True)
        return rows

    def functions(self) -> None:
        """Session helpers: a local day's midnight, a time within a local day (never after now),
        a timestamp's local day, a seeded hash in [0, 1), a member's messages per active day."""
        seed = self.seed
        for body in (
            (f"CREATE FUNCTION pg_temp.d0(d date) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS "
             f"$$ SELECT (d::timestamp AT TIME ZONE '{ZONE}') $$"),
            ("CREATE FUNCTION pg_temp.at(d date, f float8) RETURNS timestamptz LANGUAGE sql AS "
             "$$ SELECT pg_temp.d0(d) + f * least(interval '1 day', greatest({NOW} - pg_temp.d0(d), interval '0')) $$"),
            (f"CREATE FUNCTION pg_temp.ld(t timestamptz) RETURNS date LANGUAGE sql IMMUTABLE AS "
             f"$$ SELECT (t AT TIME ZONE '{ZONE}')::date $$"),
            (f"CREATE FUNCTION pg_temp.h(x bigint, salt int) RETURNS float8 LANGUAGE sql IMMUTABLE AS "
             f"$$ SELECT (hashint8extended(x, {seed} * 1000 + salt) & 4503599627370495)::float8 / 4503599627370496 $$"),
            (f"CREATE FUNCTION pg_temp.c(x bigint) RETURNS int LANGUAGE sql IMMUTABLE AS "
             f"$$ SELECT 1 + (hashint8extended(x, {seed} * 1000 + 99) & 7)::int $$"),
        ):
            self.sql(body)

    def run(self) -> None:
        self.functions()
        self.sql(f"SELECT setseed({(self.seed % 1000) / 1000.0})")

        # Members, their active days, and what the days say about each member.
        self.phase("members: draft (temp)", """
            CREATE TEMP TABLE m0 AS
            SELECT id,
                   CASE WHEN r1 < 0.05 THEN 'sandbox' ELSE 'wecom' END AS channel,
                   CASE WHEN r2 < 0.08 THEN NULL ELSE ({CODES})[1 + floor(pow(r3, 1.8) * 12)::int] END AS source_state,
                   first_seen_at,
                   CASE WHEN r4 < 0.03 THEN greatest(first_seen_at, {START})
                        + random() * ({NOW} - greatest(first_seen_at, {START})) END AS lost_at,
                   0.9 * pow(pg_temp.h(id, 1), 2) AS p
            FROM (SELECT id, random() AS r1, random() AS r2, random() AS r3, random() AS r4,
                         CASE WHEN random() < 0.4 THEN {START} - (random() * 335) * interval '1 day'
                              ELSE pg_temp.at({FIRST} + floor(random() * {D})::int, random()) END AS first_seen_at
                  FROM generate_series(1, {N}) AS id) s
            """, "ANALYZE m0")
        self.phase("activity: draft (temp)", """
            CREATE TEMP TABLE act AS
            SELECT m.id AS member_id, {FIRST} + k AS day
            FROM m0 m
            CROSS JOIN LATERAL generate_series(greatest(0, pg_temp.ld(m.first_seen_at) - {FIRST}),
                                               coalesce(pg_temp.ld(m.lost_at), {TODAY}) - {FIRST}) AS k
            WHERE random() < CASE WHEN {FIRST} + k = pg_temp.ld(m.first_seen_at) THEN 0.85 ELSE m.p END
            """, """
            CREATE TEMP TABLE st AS
            SELECT member_id, count(*)::int AS n, max(day) AS last_day,
                   bit_or(1::bigint << ({TODAY} - day)) AS mask
            FROM act GROUP BY member_id
            """, "CREATE UNIQUE INDEX ON st (member_id)", "ANALYZE act", "ANALYZE st")
        self.phase("members", """
            INSERT INTO members (id, channel, external_id, name, source_state, status, lost_at, message_count,
                                 first_seen_at, last_seen_at, stage, attributes)
            SELECT m.id, m.channel,
                   CASE m.channel WHEN 'wecom' THEN 'wmBench' || lpad(m.id::text, 8, '0') ELSE 'sandbox-' || m.id END,
                   '成员' || m.id, m.source_state,
                   CASE WHEN m.lost_at IS NULL THEN 'active' ELSE 'lost' END, m.lost_at,
                   coalesce(st.n, 0) * pg_temp.c(m.id)
                     + CASE WHEN m.first_seen_at < {START} THEN floor(random() * 200)::int ELSE 0 END,
                   m.first_seen_at,
                   greatest(m.first_seen_at, coalesce(pg_temp.at(st.last_day, random()),
                            m.first_seen_at + random() * greatest(interval '0', {START} - m.first_seen_at))),
                   CASE WHEN m.p < 0.05 THEN '泛用户' WHEN m.p < 0.25 THEN '精准用户'
                        WHEN m.p < 0.6 THEN '核心用户' ELSE '超级用户' END,
                   CASE WHEN random() < 0.3
                        THEN json_build_object('city', ({CITIES})[1 + floor(random() * 8)::int], 'consent', 'yes')
                        ELSE '{}'::json END
            FROM m0 m LEFT JOIN st ON st.member_id = m.id
            ORDER BY m.id
            """, "SELECT setval(pg_get_serial_sequence('members', 'id'), {N})", table="members")
        self.phase("member_days", """
            INSERT INTO member_days (member_id, day) SELECT member_id, day FROM act ORDER BY member_id, day
            """, table="member_days")

        # Groups and who is in them.
        self.phase("chat_groups", """
            CREATE TEMP TABLE g0 AS
            SELECT id,
                   least(500, greatest(3, round({MEAN} * exp(0.8 * sqrt(-2 * ln(1 - random()))
                                                         * cos(2 * pi() * random()) - 0.32))))::int AS size,
                   pg_temp.h(id, 7) < 0.03 AS silent,
                   CASE WHEN random() < 0.9 THEN {START} - (random() * 300) * interval '1 day'
                        ELSE pg_temp.at({FIRST} + floor(random() * {D})::int, random()) END AS created_at,
                   floor(random() * 20000)::bigint AS base
            FROM generate_series(1, {G}) AS id
            """, "ANALYZE g0", """
            INSERT INTO chat_groups (id, channel, external_id, name, status, message_count, created_at,
                                     last_active_at, owner, member_version)
            SELECT id, 'wecom', 'wrBench' || lpad(id::text, 6, '0'),
                   ({CITIES})[1 + id % 8] || (ARRAY['会员', '新品体验', '宝妈交流', '福利', 'VIP'])[1 + id % 5] ||
                   id || '群',
                   'active', base, created_at, created_at, 'staff' || lpad((1 + id % 40)::text, 2, '0'), NULL
            FROM g0 ORDER BY id
            """, "SELECT setval(pg_get_serial_sequence('chat_groups', 'id'), {G})", table="chat_groups")
        self.phase("group_memberships", """
            INSERT INTO group_memberships (group_id, member_id, joined_at, left_at, last_spoke_at, message_count)
            SELECT group_id, member_id, joined_at, left_at,
                   CASE WHEN silent THEN
                          CASE WHEN joined_at < {NOW} - interval '8 days' AND r < 0.7
                               THEN joined_at + r / 0.7 * ({NOW} - interval '8 days' - joined_at) END
                        WHEN last_day IS NOT NULL THEN
                          least(coalesce(left_at, {NOW}), greatest(joined_at, pg_temp.at(last_day, r)))
                        WHEN joined_at < {START} AND r < 0.5 THEN joined_at + r * 2 * ({START} - joined_at)
                   END,
                   CASE WHEN silent THEN 0 ELSE coalesce(n, 0) * pg_temp.c(member_id) END
                     + CASE WHEN joined_at < {START} THEN floor(r * 100)::int ELSE 0 END
            FROM (
                SELECT p.group_id, p.member_id, p.silent, j.joined_at, st.last_day, st.n, random() AS r,
                       CASE WHEN m.lost_at IS NOT NULL THEN greatest(m.lost_at, j.joined_at)
                            WHEN random() < 0.03 THEN j.joined_at + random() * ({NOW} - j.joined_at) END AS left_at
                FROM (
                    SELECT group_id, silent, created_at, (((pos - 1) * {P}) % {N}) + 1 AS member_id
                    FROM (SELECT g.id AS group_id, g.silent, g.created_at, row_number() OVER (ORDER BY g.id, i) AS pos
                          FROM g0 g CROSS JOIN LATERAL generate_series(1, g.size) AS i) slots
                    WHERE pos <= {N}
                    UNION ALL  -- 5% in a second group
                    SELECT g.id, g.silent, g.created_at, m.id
                    FROM m0 m JOIN g0 g ON g.id = 1 + floor(pg_temp.h(m.id, 12) * {G})::int
                    WHERE pg_temp.h(m.id, 11) < 0.05
                ) p
                JOIN m0 m ON m.id = p.member_id
                LEFT JOIN st ON st.member_id = p.member_id
                CROSS JOIN LATERAL (  -- most join within hours of adding the staff; some not yet
                    SELECT greatest(m.first_seen_at, p.created_at) + pow(random(), 3) * interval '2 days' AS joined_at
                ) j
                WHERE j.joined_at <= {NOW}
            ) x
            ORDER BY group_id, member_id
            ON CONFLICT DO NOTHING
            """, table="group_memberships")

        # Each group on each past day, then the groups' counters as of now.
        self.phase("group_days: per group and day (temp)", """
            CREATE TEMP TABLE gagg AS
            SELECT x.group_id, dd.k,
                   count(*) FILTER (WHERE x.joined_at < dd.day_end
                                    AND (x.left_at IS NULL OR x.left_at >= dd.day_end)) AS members,
                   count(*) FILTER (WHERE x.joined_at < dd.day_end AND (x.left_at IS NULL OR x.left_at >= dd.day_end)
                                    AND NOT x.silent AND (x.mask >> dd.k) & 127 <> 0) AS active,
                   coalesce(sum(x.c * ((x.mask >> dd.k) & 1)) FILTER (
                       WHERE x.joined_at < dd.day_end AND (x.left_at IS NULL OR x.left_at >= dd.day_end)
                             AND NOT x.silent), 0) AS msgs
            FROM (SELECT gm.group_id, g.silent, gm.joined_at, gm.left_at, coalesce(st.mask, 0) AS mask,
                         pg_temp.c(gm.member_id) AS c
                  FROM group_memberships gm JOIN g0 g ON g.id = gm.group_id
                       LEFT JOIN st ON st.member_id = gm.member_id) x
            CROSS JOIN (SELECT k, pg_temp.d0({TODAY} - k + 1) AS day_end FROM generate_series(0, {D} - 1) AS k) dd
            GROUP BY x.group_id, dd.k
            """, "CREATE UNIQUE INDEX ON gagg (group_id, k)", "ANALYZE gagg")
        self.phase("group_days (past days)", """
            INSERT INTO group_days (group_id, day, members, active_7d, messages)
            SELECT group_id, day, members, active, messages
            FROM (SELECT g.id AS group_id, {TODAY} - kk.k AS day, kk.k, g.created_at,
                         coalesce(a.members, 0) AS members, coalesce(a.active, 0) AS active,
                         g.base + sum(coalesce(a.msgs, 0)) OVER (PARTITION BY g.id ORDER BY kk.k DESC) AS messages
                  FROM g0 g CROSS JOIN generate_series(0, {D} - 1) AS kk(k)
                  LEFT JOIN gagg a ON a.group_id = g.id AND a.k = kk.k) s
            WHERE k >= 1 AND pg_temp.ld(created_at) <= day
            ORDER BY group_id, day
            """, table="group_days")
        self.phase("chat_groups: counters", """
            UPDATE chat_groups c
            SET message_count = g.base + coalesce(t.total, 0),
                last_active_at = greatest(c.created_at, coalesce(s.last_spoke, c.created_at))
            FROM g0 g
            LEFT JOIN (SELECT group_id, sum(msgs) AS total FROM gagg GROUP BY group_id) t ON t.group_id = g.id
            LEFT JOIN (SELECT group_id, max(last_spoke_at) AS last_spoke FROM group_memberships GROUP BY group_id) s
                   ON s.group_id = g.id
            WHERE c.id = g.id
            """)

        # Sign-ins (real streaks), task check-ins, rewards, redemptions, KOC, polls.
        self.phase("checkins", """
            INSERT INTO checkins (member_id, day, streak, points, at)
            SELECT member_id, day, row_number() OVER (PARTITION BY member_id, run ORDER BY day), 10, pg_temp.at(day, f)
            FROM (SELECT member_id, day, f, day - (row_number() OVER (PARTITION BY member_id ORDER BY day))::int AS run
                  FROM (SELECT member_id, day, random() AS f FROM act WHERE random() < 0.6) a) r
            ORDER BY member_id, day
            """, table="checkins")
        self.phase("task_checkins", """
            INSERT INTO task_checkins (member_id, task, points, proof, status, key, at)
            SELECT a.member_id, t.task, t.points,
                   CASE WHEN t.proof THEN 'https://img.example.com/proof/' || a.member_id || '-' || a.day || '.jpg' END,
                   CASE WHEN NOT t.proof OR a.rs < 0.8 THEN 'credited' WHEN a.rs < 0.93 THEN 'pending'
                        ELSE 'rejected' END,
                   'task:bench:' || a.member_id || ':' || a.day || ':' || t.i, pg_temp.at(a.day, a.f)
            FROM (SELECT member_id, day, random() AS f, random() AS rs, 1 + floor(pow(random(), 1.5) * 5)::int AS i
                  FROM act WHERE random() < 0.12) a
            JOIN (VALUES (1, '阅读打卡', 5, false), (2, '分享好友', 20, false), (3, '运动打卡', 10, false),
                         (4, '晒单', 30, true), (5, '新品试用', 50, true)) AS t(i, task, points, proof) ON t.i = a.i
            ORDER BY 7
            """, table="task_checkins")
        self.phase("rewards", """
            INSERT INTO rewards (id, name, cost, stock, reserved, fulfilled, per_member_limit, active, min_level,
                                 starts_at, ends_at, approval, fulfilment, created_at)
            VALUES (1, '品牌帆布袋', 200, 5000, 0, 0, 0, true, NULL, NULL, NULL, false, 'manual',
                    {START} - interval '90 days'),
                   (2, '5元无门槛券', 100, 20000, 0, 0, 5, true, NULL, NULL, NULL, false, 'code',
                    {START} - interval '90 days'),
                   (3, '新品试用装', 500, 2000, 0, 0, 1, true, NULL, NULL, NULL, false, 'manual',
                    {START} - interval '40 days'),
                   (4, '会员周边礼盒', 2000, 300, 0, 0, 1, true, NULL, NULL, NULL, false, 'manual',
                    {START} - interval '40 days'),
                   (5, '爆款空气炸锅', 20000, 30, 0, 0, 1, true, NULL, NULL, NULL, true, 'manual',
                    {START} - interval '10 days')
            """, "SELECT setval(pg_get_serial_sequence('rewards', 'id'), 5)", table="rewards")
        self.phase("redemptions", """
            INSERT INTO redemptions (member_id, reward_id, cost, status, key, code, created_at, settled_at)
            SELECT x.member_id, r.id, r.cost, x.status, 'bench:redeem:' || x.n,
                   CASE WHEN r.fulfilment = 'code' THEN 'CODE' || lpad(x.n::text, 8, '0') END, x.created_at,
                   CASE WHEN x.status IN ('fulfilled', 'cancelled')
                        THEN x.created_at + least({NOW} - x.created_at, x.settle) END
            FROM (SELECT n, member_id, reward_id, created_at, settle,
                         CASE WHEN reward_id = 2 THEN 'fulfilled'
                              WHEN reward_id = 5 AND created_at > {NOW} - interval '2 days' THEN 'awaiting_approval'
                              WHEN created_at > {NOW} - interval '3 days' AND rs < 0.7 THEN 'reserved'
                              WHEN rs < 0.1 THEN 'cancelled' WHEN rs < 0.15 THEN 'reserved'
                              ELSE 'fulfilled' END AS status
                  FROM (SELECT n, 1 + floor(random() * {N})::int AS member_id, random() AS rs,
                               random() * interval '2 days' AS settle,
                               CASE WHEN w < 0.35 THEN 1 WHEN w < 0.75 THEN 2 WHEN w < 0.90 THEN 3
                                    WHEN w < 0.98 THEN 4 ELSE 5 END AS reward_id,
                               pg_temp.at({FIRST} + floor(random() * {D})::int, random()) AS created_at
                        FROM (SELECT n, random() AS w FROM generate_series(1, greatest(10, {N} / 200)) AS n) s) s2) x
            JOIN rewards r ON r.id = x.reward_id
            ORDER BY x.created_at
            """, """
            UPDATE rewards r SET reserved = c.reserved, fulfilled = c.fulfilled
            FROM (SELECT reward_id, count(*) FILTER (WHERE status IN ('reserved', 'awaiting_approval')) AS reserved,
                         count(*) FILTER (WHERE status = 'fulfilled') AS fulfilled
                  FROM redemptions GROUP BY reward_id) c
            WHERE c.reward_id = r.id
            """, table="redemptions")
        self.phase("member_flows (onboarding, KOC)", """
            INSERT INTO member_flows (member_id, flow, state, data, version, active, entered_at, deadlines_fired,
                                      deadline_at, started_at, updated_at, finished_at)
            SELECT id, 'onboarding', CASE WHEN r < 0.75 THEN 'done' ELSE 'closed' END, '{}'::json, 5, false,
                   first_seen_at + took, CASE WHEN r < 0.75 THEN 0 ELSE 1 END, NULL, first_seen_at,
                   first_seen_at + took, first_seen_at + took
            FROM (SELECT id, first_seen_at, random() AS r,
                         least({NOW} - first_seen_at, random() * interval '2 hours') AS took
                  FROM members WHERE pg_temp.h(id, 22) < 0.92) s
            ORDER BY id
            """, """
            INSERT INTO member_flows (member_id, flow, state, data, version, active, entered_at, deadlines_fired,
                                      deadline_at, started_at, updated_at, finished_at)
            SELECT id, 'koc_screening', state, '{}'::json, 6, false, started_at + took, 0, NULL, started_at,
                   started_at + took, CASE WHEN state IN ('submitted', 'expired') THEN started_at + took END
            FROM (SELECT id, started_at, least({NOW} - started_at, random() * interval '1 day') AS took,
                         CASE WHEN r < 0.7 THEN 'submitted' WHEN r < 0.85 THEN 'expired'
                              ELSE 'q' || (1 + floor(random() * 5)::int) END AS state
                  FROM (SELECT id, random() AS r,
                               pg_temp.at({FIRST} + floor(random() * {D})::int, random()) AS started_at
                        FROM members WHERE pg_temp.h(id, 21) < 0.005) s) s2
            ORDER BY id
            """, table="member_flows")
        self.phase("koc_applications", """
            INSERT INTO koc_applications (member_id, score, recommended_type, answers, status, approved_type,
                                          decided_by, reason, created_at, decided_at)
            SELECT member_id, score, kind, '{}'::json, status,
                   CASE WHEN status = 'approved' THEN kind END,
                   CASE WHEN status <> 'pending' THEN 'console:ops' || (1 + floor(random() * 3)::int) END,
                   CASE WHEN status = 'rejected' THEN '回答过于简单' END,
                   finished_at,
                   CASE WHEN status <> 'pending'
                        THEN finished_at + least({NOW} - finished_at, random() * interval '2 days') END
            FROM (SELECT member_id, finished_at, 40 + floor(random() * 61)::int AS score,
                         (ARRAY['分享官', '内容官', '体验官', '带货官'])[1 + floor(random() * 4)::int] AS kind,
                         CASE WHEN finished_at > {NOW} - interval '3 days' AND r < 0.8 THEN 'pending'
                              WHEN r < 0.1 THEN 'pending' WHEN r < 0.6 THEN 'approved' ELSE 'rejected' END AS status
                  FROM (SELECT member_id, finished_at, random() AS r FROM member_flows
                        WHERE flow = 'koc_screening' AND state = 'submitted') f) s
            ORDER BY finished_at
            """, table="koc_applications")
        self.phase("polls and votes", """
            INSERT INTO polls (id, title, options, winners, status, opened_by, opened_at, closes_at, closed_at)
            VALUES (1, '下期兑换礼品投票', '[{"name": "保温杯", "cost": 800, "stock": 100},
                    {"name": "香薰蜡烛", "cost": 600, "stock": 100},
                    {"name": "蓝牙耳机", "cost": 5000, "stock": 20}]'::json,
                    1, 'closed', 'console:ops1', {START}, {START} + interval '7 days', {START} + interval '7 days'),
                   (2, '新品口味投票', '[{"name": "桂花乌龙", "cost": 300, "stock": 500},
                    {"name": "白桃茉莉", "cost": 300, "stock": 500}, {"name": "柚子绿茶", "cost": 300, "stock": 500},
                    {"name": "黑糖珍珠", "cost": 300, "stock": 500}]'::json,
                    2, 'open', 'console:ops1', {NOW} - interval '2 days', {NOW} + interval '5 days', NULL)
            """, "SELECT setval(pg_get_serial_sequence('polls', 'id'), 2)", """
            INSERT INTO poll_votes (poll_id, member_id, option, at)
            SELECT poll_id, id, 1 + floor(pow(random(), 1.3) * CASE poll_id WHEN 1 THEN 3 ELSE 4 END)::int,
                   CASE poll_id WHEN 1 THEN {START} + random() * interval '7 days'
                        ELSE {NOW} - random() * interval '2 days' END
            FROM members CROSS JOIN (VALUES (1), (2)) AS p(poll_id)
            WHERE pg_temp.h(id, 30 + poll_id) < 0.004
            """, table="poll_votes")

        # The ledger: every credit and debit above, in time order.
        self.phase("point_entries", """
            INSERT INTO point_entries (member_id, delta, kind, reason, key, issuer, created_at)
            SELECT member_id, delta, kind, reason, key, issuer, created_at FROM (
                SELECT member_id, 10 AS delta, 'earn' AS kind, '每日签到' AS reason,
                       'checkin:' || member_id || ':' || day AS key, NULL AS issuer, at AS created_at
                FROM checkins
                UNION ALL
                SELECT member_id, CASE streak WHEN 7 THEN 50 ELSE 200 END, 'earn', '连续签到 ' || streak || ' 天',
                       'checkin-streak:' || member_id || ':' || day, NULL, at
                FROM checkins WHERE streak IN (7, 30)
                UNION ALL
                SELECT member_id, points, 'earn', '打卡 ' || task, 'task-credit:' || id, NULL, at
                FROM task_checkins WHERE status = 'credited'
                UNION ALL
                SELECT x.member_id, -x.cost, 'spend', '兑换 ' || r.name, 'redeem:' || x.key, NULL, x.created_at
                FROM redemptions x JOIN rewards r ON r.id = x.reward_id
                UNION ALL
                SELECT member_id, cost, 'refund', '兑换取消退回', 'refund:' || id, NULL, settled_at
                FROM redemptions WHERE status = 'cancelled'
                UNION ALL
                SELECT 1 + floor(random() * {N})::int, -(10 + floor(random() * 290)::int), 'expire', '积分过期',
                       'expire:lot:bench' || n, NULL,
                       pg_temp.d0({FIRST} + floor(random() * {D})::int) + random() * interval '10 minutes'
                FROM generate_series(1, greatest(10, {N} / 100)) AS n
                UNION ALL
                SELECT 1 + floor(random() * {N})::int, 50 * (1 + floor(random() * 10)::int), 'grant', '活动奖励',
                       'operator:bench:' || n, 'console:ops' || (1 + n % 3),
                       pg_temp.at({FIRST} + floor(random() * {D})::int, random())
                FROM generate_series(1, greatest(10, {N} / 1000)) AS n
            ) e
            WHERE created_at <= {NOW}
            ORDER BY created_at
            """, table="point_entries")

        # One morning topic a day to every group.
        self.phase("broadcasts", """
            INSERT INTO broadcasts (key, source, playbook, slot, template, target, status, reason, created_by,
                                    created_at, planned_at)
            SELECT 'sop:早安话题:' || to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00',
                   'sop', '早安话题', slot, '早上好！今天聊聊：' || (ARRAY['你最爱的早餐', '周末去哪儿', '新品试用心得',
                   '育儿小妙招', '居家收纳'])[1 + (k % 5)] || '，欢迎在群里分享~',
                   '{"all": true}'::json, 'planned', NULL,
                   'system:scheduler', slot - interval '1 minute', slot - interval '1 minute'
            FROM (SELECT k, pg_temp.d0({FIRST} + k) + interval '9 hours' AS slot
                  FROM generate_series(0, {D} - 1) AS k) s
            WHERE slot <= {NOW}
            ORDER BY slot
            """, table="broadcasts")
        self.phase("deliveries", """
            INSERT INTO deliveries (broadcast_id, group_id, channel, text, status, reason, outbox_id, planned_for,
                                    not_before, settled_at)
            SELECT broadcast_id, group_id, 'wecom', text, status,
                   CASE status WHEN 'skipped' THEN '已达每群每日上限 (per_group_daily_cap)'
                               WHEN 'failed' THEN 'errcode 90500: 群主未确认发送权限'
                               WHEN 'expired' THEN '群主未在当天确认' END,
                   NULL, slot, slot,
                   CASE status WHEN 'skipped' THEN slot WHEN 'awaiting_owner' THEN NULL
                               WHEN 'expired' THEN slot + interval '1 day'
                               ELSE slot + least({NOW} - slot, random() * interval '3 hours') END
            FROM (SELECT b.id AS broadcast_id, g.id AS group_id, b.template AS text, b.slot,
                         CASE WHEN r < 0.02 THEN 'skipped' WHEN r < 0.04 THEN 'failed'
                              WHEN r < 0.12 THEN CASE WHEN b.slot > {NOW} - interval '2 days' THEN 'awaiting_owner'
                                                      ELSE 'expired' END
                              ELSE 'delivered' END AS status
                  FROM broadcasts b CROSS JOIN LATERAL (
                      SELECT id, random() + 0 * b.id AS r FROM chat_groups WHERE created_at <= b.slot) g) s
            ORDER BY broadcast_id, group_id
            """, table="deliveries")
        for temp in ("act", "st", "m0", "g0", "gagg"):
            self.sql(f"DROP TABLE {temp}")


async def rollup(url: str) -> int:
    from bot.builtin import config_from_dict
    from bot.console import rollups
    from bot.texts import Texts
    from storage.engine import Database

    config = config_from_dict({"storage": {"url": url}})
    db = Database(url)
    try:
        return await rollups.refresh(db, config, Texts(config.texts), datetime.now(UTC))
    finally:
        await db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="postgresql+psycopg://postgres@localhost/siyu_bench",
                    help="the PostgreSQL database to WIPE and fill (created if missing)")
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30, help="days of activity ending today (at most 56)")
    ap.add_argument("--seed", type=int, default=1,
                    help="random seed (same seed and clock day: the same data, but for the minutes of today)")
    args = ap.parse_args()
    if make_url(args.url).get_backend_name() != "postgresql":
        ap.error("--url must be a PostgreSQL database")
    if not 1 <= args.days <= 56:
        ap.error("--days must be 1 to 56 (activity is kept as a 64-bit mask of days)")
    if args.members < 100 or args.groups < 1:
        ap.error("--members at least 100, --groups at least 1")

    from storage.migrate import upgrade

    started = time.perf_counter()
    database = make_url(args.url).database
    with psycopg.connect(libpq(args.url, "postgres"), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            print(f"creating database {database}")
            admin.execute(f'CREATE DATABASE "{database}"')

    with psycopg.connect(libpq(args.url), autocommit=True) as conn:
        t0 = time.perf_counter()
        print(f"wiping {database}: DROP SCHEMA public CASCADE; CREATE SCHEMA public; migrations to head")
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
        upgrade(args.url)
        print(f"  {'schema':<34} {'':>16} {time.perf_counter() - t0:8.1f} s")
        # One backend, one core; big sorts in memory; nothing to wait for at commit.
        for setting in ("work_mem = '256MB'", "maintenance_work_mem = '512MB'", "max_parallel_workers_per_gather = 0",
                        "max_parallel_maintenance_workers = 0", "synchronous_commit = off", "temp_buffers = '256MB'"):
            conn.execute(f"SET {setting}")
        try:  # skip the foreign-key triggers (the rows are made consistent); needs a superuser
            conn.execute("SET session_replication_role = replica")
        except psycopg.errors.InsufficientPrivilege:
            print("  (not a superuser: foreign keys are checked row by row, slower)")

        gen = Generator(conn, members=args.members, groups=args.groups, days=args.days, seed=args.seed)
        print(f"filling {args.members:,} members, {args.groups:,} groups, {args.days} days "
              f"({gen.first} .. {gen.today}, {ZONE}), seed {args.seed}")
        t_fill = time.perf_counter()
        gen.run()
        fill_s = time.perf_counter() - t_fill
        print(f"  {'fill total':<34} {sum(gen.rows.values()):>11,} rows {fill_s:8.1f} s")

        t0 = time.perf_counter()
        written = asyncio.run(rollup(args.url))
        rollup_s = time.perf_counter() - t0
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("daily_metrics", "group_days", "cohort_retention")}
        print(f"  {'rollup job (rollups.refresh)':<34} {written:>6} days  {rollup_s:8.1f} s  "
              f"-> daily_metrics {counts['daily_metrics']:,}, group_days {counts['group_days']:,}, "
              f"cohort_retention {counts['cohort_retention']:,}")

        t0 = time.perf_counter()
        conn.execute("VACUUM (ANALYZE)")
        print(f"  {'VACUUM (ANALYZE)':<34} {'':>16} {time.perf_counter() - t0:8.1f} s")
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]

    print("\nrows per table:")
    for table, n in gen.rows.items():
        print(f"  {table:<20} {n:>11,}")
    print(f"database size {size}; total {time.perf_counter() - started:.0f} s "
          f"(fill {fill_s:.0f} s, rollup {rollup_s:.0f} s)")


if __name__ == "__main__":
    main()
