"""The dispatcher: turns an ``Update`` into handled state and outbox rows (DESIGN §4).

For each update:

1. outer middlewares run around everything; then the member's lock is taken, so two updates
   of one member never interleave while different members go on concurrently;
2. the update joins a write transaction with the other updates of its lane waiting at that
   moment (group commit; one lane on SQLite, several on PostgreSQL: see ``bot.committer``);
3. the built-in stages run over the transaction's updates: dedup (a repeat stops here), then
   member and group upserts with activity counters;
4. inner middlewares (``Dispatcher.middleware``) wrap routing, first match wins: slash-command
   → the member's active flow (one-to-one only) → message and event routes → fallback;
5. the queued replies become outbox rows in the same transaction, which then commits.

A handler that raises rolls its transaction back. A batch that fails is replayed update by
update, so one bad update never costs the others; the bad one is then recorded as failed and
its member gets an apology, so a bug never leaves a member unanswered or a platform retrying
forever. Handlers therefore change state only through ``ctx.session`` and ``ctx.reply``.
"""
from __future__ import annotations

import asyncio
import difflib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import Clock
from bot.committer import Lanes
from bot.config import Config
from bot.context import Context, Deferred
from bot.flowrunner import FlowRunner
from bot.locks import KeyedLocks
from bot.logs import handling
from bot.middlewares import Middleware, Next, audit_command, dedup, membership
from bot.roles import has_role
from bot.router import Command, Route, Router, UsageError
from bot.texts import Texts
from bot.update import FLOW_DEADLINE, Update
from storage import inbox, outbox
from storage.engine import Database, DatabaseBusy, is_transient

log = logging.getLogger("siyu.dispatcher")
# While the database is busy (DESIGN §9: every loop and retry is bounded): pauses between the
# tries of one batch, and the time they may take together before the senders are answered 503.
BUSY_PAUSES_S = (0.05, 0.2, 0.5, 0.0)
BUSY_BUDGET_S = 2.0

OuterNext = Callable[[Update], Awaitable["FeedResult"]]
OuterMiddleware = Callable[[OuterNext, Update], Awaitable["FeedResult"]]


@dataclass(frozen=True, slots=True)
class Reply:
    id: int
    chat: str | None
    to: str | None
    text: str


@dataclass(frozen=True, slots=True)
class FeedResult:
    replies: list[Reply]
    duplicate: bool = False
    failed: bool = False
    shown: tuple[str, ...] = ()  # an update from a page: what the page shows (``Context.shown``)
    # The earliest a reply may go when all of them wait (a group digest's window); None: at once.
    due: datetime | None = None


RoleResolver = Callable[[Context], Awaitable[str]]
OnCommit = Callable[[FeedResult], None]


class Dispatcher:
    def __init__(
        self, db: Database, *, clock: Clock, texts: Texts, config: Config | None = None,
        role_of: RoleResolver | None = None, flows: FlowRunner | None = None, lanes: int = 2,
    ) -> None:
        """``lanes``: concurrent write transactions (``[storage] write_lanes``); 1 on SQLite."""
        self.db = db
        self.config = config if config is not None else Config()
        self.clock = clock
        self.texts = texts
        self.flows = flows
        self.root = Router("root")
        self.member_locks = KeyedLocks()
        self._role_of = role_of
        self._outer: list[OuterMiddleware] = []
        self._inner: list[Middleware] = []
        self._on_commit: list[OnCommit] = []
        self._commands: dict[str, Command] = {}
        self._routes: list[Route] = []
        self._fallbacks: list[Route] = []
        self._committer = Lanes(
            self._process, lanes=1 if db.is_sqlite else lanes, key=lambda u: f"{u.channel}:{u.sender}",
        )

    # -- registration -------------------------------------------------------------------

    def include_router(self, router: Router) -> Router:
        """Add ``router`` (and the routers it includes) after those already included.

        Raises ``ValueError`` if a command name or alias is already taken."""
        self.root.include_router(router)
        table: dict[str, Command] = {}
        for r in self.root.walk():
            for cmd in r.commands:
                for name in (cmd.name, *cmd.aliases):
                    if name in table:
                        self.root.children.remove(router)
                        raise ValueError(f"/{name} is registered twice (router {r.name!r})")
                    table[name] = cmd
        self._commands = table
        self._routes = [route for r in self.root.walk() for route in r.routes]
        self._fallbacks = [route for r in self.root.walk() for route in r.fallbacks]
        return router

    def include_routers(self, routers: Iterable[Router]) -> None:
        for router in routers:
            self.include_router(router)

    def middleware(self, mw: Middleware) -> Middleware:
        """Add an inner middleware: it runs inside the update's transaction, after membership."""
        self._inner.append(mw)
        return mw

    def outer_middleware(self, mw: OuterMiddleware) -> OuterMiddleware:
        """Add an outer middleware: it runs around the member lock and the transaction."""
        self._outer.append(mw)
        return mw

    def on_commit(self, callback: OnCommit) -> None:
        """Call ``callback`` after an update's transaction commits (the outbox worker wakes here)."""
        self._on_commit.append(callback)

    @property
    def commands(self) -> dict[str, Command]:
        """Every command by name and alias."""
        return self._commands

    def commands_for(self, role: str) -> list[Command]:
        """The distinct commands ``role`` may run, in registration order."""
        seen: list[Command] = []
        for cmd in self.commands.values():
            if cmd not in seen and has_role(role, cmd.role):
                seen.append(cmd)
        return seen

    @property
    def keyword_routes(self) -> list[Route]:
        """The message routes registered with a ``Keyword``, in routing order (the member help)."""
        return [r for r in self._routes if r.keyword is not None]

    def recognizes(self, update: Update) -> bool:
        """Whether ``update`` is clearly a command: a slash-command this bot has, or a message
        one of the features' keyword routes takes (their registrations, not a list here)."""
        if update.is_command:
            return _command_name(update.text or "") in self.commands
        return update.event is None and any(r.matches(update) for r in self.keyword_routes)

    # -- processing ---------------------------------------------------------------------

    async def feed(self, update: Update) -> FeedResult:
        """Handle ``update`` completely; return the replies it produced (already outbox rows)."""
        call: OuterNext = self._serialized
        for mw in reversed(self._outer):
            call = functools.partial(mw, call)
        with handling(update.key):  # log lines say which update they concern (bot.logs)
            result = await call(update)
            if not result.duplicate:
                for callback in self._on_commit:
                    try:
                        callback(result)
                    except Exception:  # committed: the sender must not see a failure and retry
                        log.exception("an on-commit callback failed on %s", update.key)
        return result

    async def close(self) -> None:
        await self._committer.close()

    def lane_of(self, update: Update) -> int:
        """Which commit lane ``update`` goes to: updates of one lane are committed in turn."""
        return self._committer.lane_of(f"{update.channel}:{update.sender}")

    async def _serialized(self, update: Update) -> FeedResult:
        async with self.member_locks.hold(update.member_key):
            return await self._committer.submit(update)

    async def _process(self, updates: Sequence[Update]) -> list[FeedResult]:
        try:
            return await self._committed(updates)
        except DatabaseBusy:
            raise
        except Exception:
            if len(updates) > 1:
                log.warning("a batch of %d updates failed; replaying them one by one", len(updates))
                return [(await self._process([u]))[0] for u in updates]
            update = updates[0]
            with handling(update.key):
                log.exception("update %s from %s:%s failed; the member gets an apology",
                              update.key, update.channel, update.sender)
                return [await self._record_failure(update)]

    async def _committed(self, updates: Sequence[Update]) -> list[FeedResult]:
        """Handle ``updates`` in one transaction, trying again while the database is busy (a
        few times, briefly); then ``DatabaseBusy``, with nothing committed, so each sender may
        retry the same id. A retry of a batch whose commit went through before its answer was
        lost finds its updates handled, and answers them as they were answered."""
        started = asyncio.get_running_loop().time()
        for attempt, pause in enumerate(BUSY_PAUSES_S):
            try:
                async with self.db.transaction() as session:
                    return await self._handle(session, updates)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                spent = asyncio.get_running_loop().time() - started
                if attempt == len(BUSY_PAUSES_S) - 1 or spent + pause > BUSY_BUDGET_S:
                    log.warning("database busy (%s); %d update(s) answered 503 after %d attempt(s)",
                                type(exc).__name__, len(updates), attempt + 1)
                    raise DatabaseBusy(str(exc)) from exc
                await asyncio.sleep(pause * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _handle(self, session: AsyncSession, updates: Sequence[Update]) -> list[FeedResult]:
        now = self.clock.now()
        batch = Deferred()
        ctxs = [Context(update=u, session=session, now=now, texts=self.texts, dispatcher=self, batch=batch)
                for u in updates]
        await dedup(session, ctxs)
        fresh = [c for c in ctxs if not c.duplicate]
        await membership(session, fresh)
        if self.flows is not None:
            await self.flows.prefetch(fresh)
        chain: Next = self._route
        for mw in reversed(self._inner):
            chain = functools.partial(mw, chain)
        for ctx in fresh:
            # The batch runs in the committer's task: each update's lines are marked here.
            with handling(ctx.update.key):
                await chain(ctx)
        await batch.run()  # what handlers deferred, for the whole batch at once (``Context.defer``)
        outgoing = [m for ctx in fresh for m in ctx.outgoing]
        ids = iter(await outbox.enqueue(session, outgoing, now=now))
        results = []
        for ctx in ctxs:
            if ctx.duplicate:  # a retry gets the answer the original got
                replies = [Reply(m.id, m.chat, m.to, m.text) for m in await outbox.for_update(session, ctx.update.key)]
                results.append(FeedResult(replies, duplicate=True))
            else:
                waits = [m.not_before for m in ctx.outgoing if m.not_before is not None and m.not_before > now]
                due = min(waits) if waits and len(waits) == len(ctx.outgoing) else None
                results.append(FeedResult([Reply(next(ids), m.chat, m.to, m.text) for m in ctx.outgoing],
                                          shown=tuple(ctx.shown), due=due))
        return results

    async def _record_failure(self, update: Update) -> FeedResult:
        """Record a failed update as handled and apologise to its member (an id whose handling
        is a bug is not tried again). If even that cannot be written, it is ``DatabaseBusy``."""
        try:
            return await self._apologise(update)
        except Exception as exc:
            if is_transient(exc):
                raise DatabaseBusy(str(exc)) from exc
            raise

    async def _apologise(self, update: Update) -> FeedResult:
        now = self.clock.now()
        message = self.texts("error")
        target = outbox.Outgoing(update.channel, message, chat=update.chat,
                                 to=None if update.chat else update.sender, update_key=update.key)
        async with self.db.transaction() as session:
            # Ack-first channels stored the row before handling; others have none yet.
            if not await inbox.claim(session, update.key, update.channel, now=now, handled=True,
                                     error="handler failed"):
                await inbox.mark_handled(session, update.key, now=now, error="handler failed")
            if update.page:  # the page shows the apology; nothing is sent
                return FeedResult([], failed=True, shown=(message,))
            ids = await outbox.enqueue(session, [target], now=now)
        return FeedResult([Reply(ids[0], target.chat, target.to, message)], failed=True)

    @property
    def flow_runner(self) -> FlowRunner:
        """The flow engine; a bot built without one has no conversations to start."""
        if self.flows is None:
            raise RuntimeError("this dispatcher has no flow engine")
        return self.flows

    async def role_of(self, ctx: Context) -> str:
        return await self._role_of(ctx) if self._role_of is not None else "member"

    async def _route(self, ctx: Context) -> None:
        update = ctx.update
        if update.action is not None:
            await update.action(ctx)
            return
        if update.is_command:
            # Only commands need the sender's role (one read): a chat message does not pay for it.
            ctx.role = await self.role_of(ctx)
            await self._run_command(ctx)
            return
        if update.event == FLOW_DEADLINE:
            if self.flows is not None:
                await self.flows.on_deadline(ctx)
            return
        if update.event is None and update.is_private and not update.page and self.flows is not None:
            if await self.flows.handle(ctx):
                return
        for route in self._routes if update.event is not None else (*self._routes, *self._fallbacks):
            if route.matches(update):
                if route.batch is not None and ctx.batch is not None:
                    await ctx.defer(route.batch)  # the route's updates of this batch, together
                    return
                await route.handler(ctx)
                return

    async def _run_command(self, ctx: Context) -> None:
        name, *rest = (ctx.update.text or "")[1:].strip().split(maxsplit=1) or [""]
        name = name.lower()
        ctx.command, ctx.args = name, rest[0] if rest else ""
        cmd = self.commands.get(name)
        if cmd is None:
            visible = [n for n, c in self.commands.items() if has_role(ctx.role, c.role)]
            close = difflib.get_close_matches(name, visible, n=1)
            hint = ctx.texts("did_you_mean", command=close[0]) if close else ""
            # Inside a flow, the member is reminded of the question it waits on.
            prompt = await self.flows.current_prompt(ctx) if self.flows and ctx.update.is_private else None
            ctx.reply(ctx.texts("unknown_command", command=name[:32]) + hint + (f"\n{prompt}" if prompt else ""))
            return
        if not has_role(ctx.role, cmd.role):
            ctx.reply(ctx.texts("command_refused", command=cmd.name, role=ctx.texts(f"role_min_{cmd.role}")))
            await audit_command(ctx, cmd, "refused")
            return
        if self.flows is not None and ctx.update.is_private:
            await self.flows.give_way(ctx)  # a confirmation waiting for 确认 steps aside
        queued = len(ctx.outgoing)
        try:
            async with ctx.session.begin_nested():  # a usage error undoes what the handler did
                await cmd.handler(ctx)
        except UsageError as exc:
            del ctx.outgoing[queued:]
            usage = cmd.usage or f"/{cmd.name}"
            ctx.reply(ctx.texts("command_usage", problem=exc.problem, usage=usage))
            await audit_command(ctx, cmd, "usage")
            return
        if cmd.role != "member":
            await audit_command(ctx, cmd, "ok")


def _command_name(text: str) -> str:
    """The command a slash-message names (``/Help x`` → ``help``)."""
    words = text[1:].strip().split(maxsplit=1)
    return words[0].lower() if words else ""
