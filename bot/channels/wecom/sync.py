"""Day one: the customers and groups a brand already has, read from WeCom and written as members,
staff relationships (跟进人), groups and memberships (``siyu wecom sync``, and a daily job).

1. ``externalcontact/get_follow_user_list``: the staff with the customer-contact feature.
2. For each of them, ``externalcontact/batch/get_by_user`` page by page (its cursor, at most 100
   a page): their customers, each with the relationship (added at, State, remark).
3. ``externalcontact/groupchat/list`` page by page (its cursor), then ``groupchat/get`` of each
   group with the members' names.

Resumable: each page is written in one transaction with the run's progress (cursors), so a run
cut short (an error that outlasts its retries, a crash, Ctrl-C) continues from there, and a page
is never half written. Writes compare with what is stored, so a second run of unchanged data
changes nothing. Paced: every call takes a token from one bucket (``[wecom] sync_calls_per_s``),
at most ``LANES`` calls are in flight and ``WRITERS`` pages written at once, so the sync stays a
small share of WeCom's per-API quota (10,000 calls a minute per corp, wecom.md §4.1,
document/path/90312), which the app's welcomes, callbacks' group reads and owner tasks share.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.background import cancel
from bot.channels.wecom.api import WeComAPI, WeComError
from bot.channels.wecom.config import WecomConfig
from bot.channels.wecom.messages import NAME
from bot.channels.wecom.tokens import TokenCache, cache_key
from bot.clock import Clock
from bot.config import Config
from bot.jobs import Job
from bot.ratelimit import TokenBucket
from bot.texts import Texts
from storage import contact_sync
from storage.contact_sync import GroupSeen, Person, RunState
from storage.engine import Database

log = logging.getLogger("siyu.wecom.sync")

RUN = "wecom"
LEASE = timedelta(minutes=5)
LANES = 8  # calls in flight at once (the bucket still holds them to sync_calls_per_s)
# Pages written at once: the sync never holds more than this many of the pool's connections,
# which the app's callbacks and welcomes need too.
WRITERS = 2
# batch/get_by_user: "limit 返回的最大记录数，整型，最大值100" (wechatpy/wechatpy:wechatpy/work/client/
# api/external_contact.py batch_get_by_user; developer.work.weixin.qq.com/document/path/92994).
CUSTOMERS_PAGE = 100
# groupchat/list takes 1..1000 (wecom.md §3.6); 100 a page, so a restart re-reads at most 100
# groups. Without owner_filter WeCom refuses (81017) past 1000 visible staff: then by owners.
GROUPS_PAGE = 100
OWNERS_UNFILTERED = 1000
OWNERS_CHUNK = 100
DONE, FAILED = "<done>", "<failed>"
ERRORS_KEPT = 50
# Rows added between two refreshes of the database's statistics (storage.contact_sync).
ANALYZE_EVERY = 10_000

Report = Callable[[RunState], None]


class SyncAborted(Exception):
    """An API error outlasted its retries: the progress is kept, the next run continues."""


def _at(seconds: object) -> datetime:
    try:
        return datetime.fromtimestamp(int(seconds or 0), tz=UTC)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.fromtimestamp(0, tz=UTC)


def _text(value: object, limit: int) -> str | None:
    return str(value)[:limit] if value else None


class ContactSync:
    def __init__(self, db: Database, api: WeComAPI, clock: Clock, *, calls_per_s: float, lanes: int = LANES,
                 attempts: int = 3, max_wait_s: float = 60.0, backoff_s: float = 1.0,
                 report: Report | None = None) -> None:
        self.db, self.api, self.clock = db, api, clock
        self.bucket = TokenBucket(calls_per_s, burst=1)
        self.lanes = lanes
        self._writers = asyncio.Semaphore(WRITERS)
        self._added = 0
        self.attempts = attempts
        self.max_wait_s = max_wait_s
        self.backoff_s = backoff_s
        self.report = report or (lambda state: None)

    async def run(self) -> RunState | None:
        """One sync, to its end or until an error outlasts its retries (``SyncAborted``, the
        progress kept). None when another process is syncing."""
        async with self.db.transaction() as session:
            state = await contact_sync.claim(session, RUN, now=self.clock.now(), lease=LEASE)
        if state is None:
            return None
        state.counts.setdefault("calls", 0)
        began = time.monotonic()
        try:
            await self._customers(state)
            await self._groups(state)
        except BaseException:
            # The time spent counts in the run's total, which the run that continues it reports.
            state.counts["ms"] = state.counts.get("ms", 0) + int((time.monotonic() - began) * 1000)
            await asyncio.shield(self._stop(state))
            raise
        state.counts["ms"] = state.counts.get("ms", 0) + int((time.monotonic() - began) * 1000)
        async with self.db.transaction() as session:
            await contact_sync.save(session, RUN, state, now=self.clock.now(), lease=LEASE, finished=True)
        self.report(state)
        return state

    async def _stop(self, state: RunState) -> None:
        try:
            async with self.db.transaction() as session:
                await contact_sync.save(session, RUN, state, now=self.clock.now(), lease=LEASE)
                await contact_sync.release(session, RUN)
        except Exception:
            log.exception("could not keep the sync's progress")

    # -- calls -----------------------------------------------------------------------------------

    def _note(self, state: RunState, what: str, exc: WeComError) -> None:
        state.errors.append(f"{what}: {exc.errcode} {exc.errmsg}")
        del state.errors[:-ERRORS_KEPT]
        state.counts["errors"] = state.counts.get("errors", 0) + 1
        log.warning("sync: %s: %s %s", what, exc.errcode, exc.errmsg)

    async def _call(self, state: RunState, endpoint: str, body: dict[str, Any] | None, *, what: str,
                    method: str = "POST") -> dict[str, Any]:
        """One paced call; a retryable error (busy, network, rate limit) is retried after a wait,
        at most ``attempts`` times in all; each error is named in the run's errors."""
        for attempt in range(1, self.attempts + 1):
            await self.bucket.acquire()
            state.counts["calls"] += 1
            try:
                return await self.api.call(endpoint, body, method=method)
            except WeComError as exc:
                self._note(state, what, exc)
                if not exc.retryable:
                    raise
                if attempt == self.attempts:
                    raise SyncAborted(f"{what}: {exc.errcode} {exc.errmsg}") from None
                await asyncio.sleep(min(exc.retry_after or self.backoff_s * 2 ** (attempt - 1), self.max_wait_s))
        raise AssertionError("unreachable")

    async def _save(self, state: RunState, write: Callable[[Any, dict[str, int]], Any] | None = None,
                    undo: Callable[[], None] | None = None) -> None:
        """Write a page (``write(session, counts)``) and where the run stands, in one transaction.
        If it fails, ``undo`` puts the progress back and its counts are taken back, so the page
        is read again rather than skipped or counted twice."""
        delta: dict[str, int] = {}
        added = False
        try:
            async with self._writers, self.db.transaction() as session:
                if write is not None:
                    await write(session, delta)
                _add(state.counts, delta)
                added = True
                await contact_sync.save(session, RUN, state, now=self.clock.now(), lease=LEASE)
        except BaseException:
            if added:
                _add(state.counts, delta, -1)
            if undo is not None:
                undo()
            raise
        self._added += delta.get("members_added", 0) + delta.get("relationships_added", 0)
        if self._added >= ANALYZE_EVERY:
            self._added = 0
            async with self._writers, self.db.transaction() as session:
                await contact_sync.refresh_statistics(session)
        self.report(state)

    # -- customers -------------------------------------------------------------------------------

    async def _customers(self, state: RunState) -> None:
        staff: dict[str, str] | None = state.progress.get("staff")
        if staff is None:
            data = await self._call(state, "externalcontact/get_follow_user_list", None,
                                    what="get_follow_user_list", method="GET")
            staff = {str(u): "" for u in data.get("follow_user") or []}
            state.progress["staff"] = staff
            state.counts["staff"] = len(staff)
            await self._save(state)
        todo: asyncio.Queue[str] = asyncio.Queue()
        for userid, cursor in staff.items():
            if cursor not in (DONE, FAILED):
                todo.put_nowait(userid)

        async def lane() -> None:
            while not todo.empty():
                await self._customers_of(state, todo.get_nowait())

        await _all(lane() for _ in range(self.lanes))

    async def _customers_of(self, state: RunState, userid: str) -> None:
        staff: dict[str, str] = state.progress["staff"]
        pages: dict[str, int] = state.progress.setdefault("pages", {})
        while staff[userid] not in (DONE, FAILED):
            page = pages.get(userid, 0) + 1
            body = {"userid_list": [userid], "cursor": staff[userid], "limit": CUSTOMERS_PAGE}
            try:
                data = await self._call(state, "externalcontact/batch/get_by_user", body,
                                        what=f"batch/get_by_user {userid} page {page}")
            except SyncAborted:
                raise
            except WeComError:  # not retryable (no permission for this staff member ...): skip them
                staff[userid] = FAILED
                await self._save(state)
                return
            seen = []
            for item in data.get("external_contact_list") or []:
                contact, follow = item.get("external_contact") or {}, item.get("follow_info") or {}
                if not contact.get("external_userid"):
                    continue
                person = Person(str(contact["external_userid"])[:128], _text(contact.get("name"), 128),
                                _at(follow.get("createtime")), _text(follow.get("state"), 64))
                seen.append((person, str(follow.get("userid") or userid)[:128], _text(follow.get("remark"), 128)))
            was = staff[userid]
            staff[userid] = str(data.get("next_cursor") or "") or DONE
            pages[userid] = page

            async def write(session: Any, counts: dict[str, int], seen: list[tuple[Person, str, str | None]] = seen,
                            ) -> None:
                counts["customers"] = len(seen)
                await contact_sync.customers(session, NAME, seen, counts)

            def undo(was: str = was, page: int = page) -> None:
                staff[userid], pages[userid] = was, page - 1

            await self._save(state, write, undo)

    # -- groups ----------------------------------------------------------------------------------

    async def _groups(self, state: RunState) -> None:
        staff = sorted(state.progress.get("staff") or {})
        chunks: list[list[str]] = ([[]] if len(staff) <= OWNERS_UNFILTERED else
                                   [staff[i:i + OWNERS_CHUNK] for i in range(0, len(staff), OWNERS_CHUNK)])
        where = state.progress.setdefault("groups", {"chunk": 0, "cursor": ""})
        while where["chunk"] < len(chunks):
            owners = chunks[where["chunk"]]
            body: dict[str, Any] = {"status_filter": 0, "cursor": where["cursor"], "limit": GROUPS_PAGE}
            if owners:
                body["owner_filter"] = {"userid_list": owners}
            data = await self._call(state, "externalcontact/groupchat/list", body, what="groupchat/list")
            ids = [str(c["chat_id"]) for c in data.get("group_chat_list") or [] if c.get("chat_id")]
            chats = await self._read_groups(state, ids)
            cursor, was = str(data.get("next_cursor") or ""), dict(where)
            if cursor:
                where["cursor"] = cursor
            else:
                where.update(chunk=where["chunk"] + 1, cursor="")
            now = self.clock.now()

            async def write(session: Any, counts: dict[str, int], chats: list[GroupSeen] = chats,
                            now: datetime = now) -> None:
                counts["groups"] = len(chats)
                await contact_sync.groups(session, NAME, chats, counts, now=now)

            def undo(was: dict[str, Any] = was) -> None:
                where.update(was)

            await self._save(state, write, undo)

    async def _read_groups(self, state: RunState, ids: list[str]) -> list[GroupSeen]:
        found: dict[str, GroupSeen] = {}
        todo = list(ids)

        async def lane() -> None:
            while todo:
                chat_id = todo.pop()
                try:
                    data = await self._call(state, "externalcontact/groupchat/get",
                                            {"chat_id": chat_id, "need_name": 1}, what=f"groupchat/get {chat_id}")
                except SyncAborted:
                    raise
                except WeComError:  # dismissed meanwhile, no permission ...: named, skipped
                    continue
                found[chat_id] = _group(data.get("group_chat") or {}, chat_id)

        await _all(lane() for _ in range(self.lanes))
        return [found[i] for i in ids if i in found]


def _add(counts: dict[str, int], delta: dict[str, int], sign: int = 1) -> None:
    for key, n in delta.items():
        counts[key] = counts.get(key, 0) + sign * n


def _group(chat: dict[str, Any], chat_id: str) -> GroupSeen:
    members = tuple(Person(str(m["userid"])[:128], _text(m.get("name"), 128), _at(m.get("join_time")))
                    for m in chat.get("member_list") or [] if m.get("userid"))
    return GroupSeen(chat_id[:128], _text(chat.get("name"), 128), _text(chat.get("owner"), 128),
                     _text(chat.get("member_version"), 64), _at(chat.get("create_time")), members)


async def _all(lanes: Any) -> None:
    """Run the lanes together; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(lane) for lane in lanes]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def for_channel(db: Database, http: aiohttp.ClientSession, settings: WecomConfig, clock: Clock, *,
                tokens: TokenCache | None = None, report: Report | None = None, **options: Any) -> ContactSync:
    """A sync with the app's keys. Its client does not retry by itself (``attempts=1``): the sync
    retries, and names each error it met."""
    api = WeComAPI(http, base_url=settings.api_base_url, corp_id=settings.corp_id, secret=settings.secret,
                   attempts=1)
    api.tokens = tokens or TokenCache(db, clock, cache_key(settings.corp_id, settings.secret), api.fetch_token)
    options.setdefault("calls_per_s", settings.sync_calls_per_s)
    return ContactSync(db, api, clock, report=report, **options)


class DailySync:
    """The job that starts a sync every ``[wecom] sync_every_h`` hours. The sync runs beside the
    jobs, not inside the job runner, so the other jobs (flow deadlines, owner tasks) keep their
    pace while it reads; a sync cut short by a stop continues at the next start."""

    CHECK_EVERY_S = 600.0

    def __init__(self, make: Callable[[], ContactSync], db: Database, every_h: int) -> None:
        self.make, self.db, self.every = make, db, timedelta(hours=every_h)
        self.task: asyncio.Task[None] | None = None

    def job(self) -> Job:
        return Job("wecom_sync", self.due, every_s=self.CHECK_EVERY_S)

    async def due(self, db: Database, config: Config, texts: Texts, now: datetime) -> int:
        if self.task is not None and not self.task.done():
            return 0
        async with self.db.read() as session:
            last = await contact_sync.last_finished(session, RUN)
        if last is not None and now - last < self.every:
            return 0
        self.task = asyncio.ensure_future(self._run())
        return 1

    async def _run(self) -> None:
        try:
            state = await self.make().run()
        except SyncAborted as exc:
            log.warning("WeCom sync stopped (%s); the next run continues from here", exc)
            return
        if state is not None:
            log.info("WeCom sync done: %s", state.counts)

    async def stop(self) -> None:
        await cancel(self.task)
