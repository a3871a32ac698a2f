"""Routers: where handlers are registered, aiogram-style, with decorators and filters.

    router = Router("checkin")

    @router.command("points")
    async def points(ctx: Context) -> None:
        \"\"\"查看我的积分\"\"\"            # the first docstring line is the command's help
        ctx.reply(...)

    @router.message(Text("签到"), keyword=Keyword("签到", "signin_about"))
    async def sign_in(ctx: Context) -> None: ...   # listed in the member help

    @router.event("member_joined")
    async def welcome(ctx: Context) -> None: ...

Routers nest (``include_router``); the dispatcher asks them in the order they were included.
"""
from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from bot.context import Context, Stage
from bot.filters import Filter
from bot.roles import ROLES
from bot.update import Update

Handler = Callable[[Context], Awaitable[None]]
# A route's batch stage (a ``Context.defer`` stage): does for each context what the route's
# handler would (same rules, same answers), for all the updates of a group-commit batch the
# route takes, in a few multi-row statements instead of a few statements per update (DESIGN §9).
BatchHandler = Stage


class UsageError(Exception):
    """A command's arguments are wrong: ``problem`` says how (shown to the sender with the
    command's usage). Whatever the handler changed before raising is undone."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Command:
    name: str
    handler: Handler
    role: str
    description: str  # the docstring's first line: the command's /help entry
    aliases: tuple[str, ...] = ()
    usage: str = ""  # the docstring's other lines: shown by /help <命令> and on wrong arguments


@dataclass(frozen=True)
class Keyword:
    """A word members send without a slash (「积分」, 「兑换 3」), as the feature that takes it
    registers it: the member help lists ``word`` with the text ``about`` (a key of the feature's
    texts), and a message it takes is known as a command (a confirmation steps aside for it,
    ``flows.confirm``). A new feature's keywords so appear by themselves."""

    word: str
    about: str


@dataclass(frozen=True)
class Route:
    handler: Handler
    filters: tuple[Filter, ...]
    events: frozenset[str] | None = None  # None: a text message route
    keyword: Keyword | None = None
    batch: BatchHandler | None = None

    def matches(self, update: Update) -> bool:
        if self.events is None:
            if update.event is not None or update.text is None:
                return False
        elif update.event not in self.events:
            return False
        return all(f(update) for f in self.filters)


def _check_handler(handler: Handler) -> None:
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{handler.__qualname__} must be an async function taking a Context")


class Router:
    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: list[Command] = []
        self.routes: list[Route] = []
        self.fallbacks: list[Route] = []
        self.children: list[Router] = []

    def include_router(self, router: Router) -> Router:
        self.children.append(router)
        return router

    def walk(self) -> Iterator[Router]:
        yield self
        for child in self.children:
            yield from child.walk()

    def command(self, name: str, *, role: str = "member",
                aliases: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
        """Register ``/name``. Requires ``role`` (member, viewer, operator or admin) to run."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")

        def register(handler: Handler) -> Handler:
            _check_handler(handler)
            lines = (inspect.getdoc(handler) or "").splitlines()
            self.commands.append(Command(name, handler, role, lines[0] if lines else "", aliases,
                                         "\n".join(line for line in lines[1:] if line.strip())))
            return handler

        return register

    def message(self, *filters: Filter, keyword: Keyword | None = None,
                batch: BatchHandler | None = None) -> Callable[[Handler], Handler]:
        """Register a handler for text messages that pass every filter; ``keyword``: what a
        member sends for it, with its description, for the member help. With ``batch``, the
        updates of a batch this route takes are handled together by it (after every update's
        middlewares ran), the handler staying for updates handled alone elsewhere."""
        return self._add(self.routes, filters, None, keyword, batch)

    def event(self, *events: str, filters: tuple[Filter, ...] = ()) -> Callable[[Handler], Handler]:
        """Register a handler for events (``member_joined``, ``member_left``, ``contact_added``...)."""
        if not events:
            raise ValueError("name at least one event")
        return self._add(self.routes, filters, frozenset(events))

    def fallback(self, *filters: Filter) -> Callable[[Handler], Handler]:
        """Register a handler for text nothing else took."""
        return self._add(self.fallbacks, filters, None)

    @staticmethod
    def _add(target: list[Route], filters: tuple[Filter, ...], events: frozenset[str] | None,
             keyword: Keyword | None = None, batch: BatchHandler | None = None) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            _check_handler(handler)
            target.append(Route(handler, tuple(filters), events, keyword, batch))
            return handler

        return register
