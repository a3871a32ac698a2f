"""``Context``: what a handler gets: the update, the member, the open transaction, a way to reply."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from bot.texts import Texts
from bot.update import Update
from storage import outbox
from storage.community import GroupRef, MemberRef
from storage.outbox import Outgoing

if TYPE_CHECKING:
    from bot.config import Config
    from bot.dispatcher import Dispatcher
    from bot.flowrunner import FlowRunner

# WeCom's welcome code is valid 20 s after the event (wecom.md §3.4).
WELCOME_CODE_TTL = timedelta(seconds=20)

# A batch stage: runs once for the contexts of a batch that asked for it (``Context.defer``).
Stage = Callable[[list["Context"]], Awaitable[None]]


class Deferred:
    """The stages the handlers (or routes, ``Router.message(batch=...)``) of one batch deferred,
    each with the contexts that asked, in the order first asked: run after every handler of the
    batch, before its replies are written. A stage's messages for a context go where that
    context stood when it deferred, before what a middleware queued after it, as a handler's would."""

    def __init__(self) -> None:
        self._stages: dict[Stage, list[tuple[Context, int]]] = {}

    def add(self, stage: Stage, ctx: Context) -> None:
        self._stages.setdefault(stage, []).append((ctx, len(ctx.outgoing)))

    async def run(self) -> None:
        while self._stages:  # a stage may defer another
            stages, self._stages = self._stages, {}
            for stage, items in stages.items():
                sizes = [len(ctx.outgoing) for ctx, _ in items]
                await stage([ctx for ctx, _ in items])
                for (ctx, mark), size in zip(items, sizes, strict=True):
                    if mark != size:
                        added = ctx.outgoing[size:]
                        del ctx.outgoing[size:]
                        ctx.outgoing[mark:mark] = added


@dataclass(eq=False)
class Context:
    """One update being handled.

    Everything done through ``session`` and every message queued with ``reply``/``send`` is
    committed together when handling ends, or not at all if it raises: a reply exists exactly
    when the change it reports does.
    """

    update: Update
    session: AsyncSession
    now: datetime
    texts: Texts
    dispatcher: Dispatcher
    role: str = "member"
    command: str | None = None
    args: str = ""
    # Set by the membership stage: a member_joined that really (re)joined the group.
    joined: bool = False
    # Set by the dedup stage: this update was handled before (a retry); it is not handled again.
    duplicate: bool = False
    outgoing: list[Outgoing] = field(default_factory=list)
    # What an update from a page (``Update.page``) answers: shown there, not sent.
    shown: list[str] = field(default_factory=list)
    # The batch's deferred stages (set by the dispatcher); None: a stage runs at once.
    batch: Deferred | None = None
    # Scratch space for middlewares to hand things to handlers (aiogram's ``data``).
    data: dict[str, Any] = field(default_factory=dict)
    _member: MemberRef | None = None
    _group: GroupRef | None = None

    @property
    def member(self) -> MemberRef:
        if self._member is None:
            raise RuntimeError("the member is loaded by the membership stage, which has not run")
        return self._member

    @property
    def sender_member(self) -> MemberRef | None:
        """The sender as a member; None where nobody sends as one (the console, the REST API)."""
        return self._member

    @property
    def group(self) -> GroupRef | None:
        return self._group

    @property
    def display_name(self) -> str:
        return self.member.name or self.update.sender_name or self.texts("member_name_unknown")

    async def defer(self, stage: Stage) -> None:
        """Run ``stage`` for this context together with the others of the batch that defer the
        same stage, after every handler of the batch (a few statements for a rush instead of a
        few per update); without a batch (the console, the API) it runs now. Its replies are
        written with the batch's."""
        if self.batch is None:
            await stage([self])
        else:
            self.batch.add(stage, self)

    def reply(self, text: str) -> None:
        """Answer where the update came from: in its group, or one-to-one to the sender; a
        member's web page shows it there (``Update.page``)."""
        if self.update.page:
            self.shown.append(text)
        elif self.update.chat is not None:
            self.send(text, chat=self.update.chat)
        else:
            self.send(text, to=self.update.sender)

    @property
    def config(self) -> Config:
        return self.dispatcher.config

    @property
    def zone(self) -> ZoneInfo:
        """The community's time zone (``[community] timezone``): its days and weeks."""
        return self.dispatcher.config.zone

    @property
    def actor(self) -> str:
        """Who acts, as the audit trail names them: ``channel:id`` (an identity is both, DESIGN §11)."""
        return f"{self.update.channel}:{self.update.sender}"

    @property
    def flows(self) -> FlowRunner:
        """The flow engine, to start or move a member's conversation."""
        return self.dispatcher.flow_runner

    def welcome(self, text: str) -> None:
        """Welcome the sender one-to-one. On WeCom this answers the contact's welcome code,
        which is valid 20 s and once: it goes out before every other queued message."""
        code = self.update.welcome_code
        if code is None:
            self.send(text, to=self.update.sender)
            return
        self.outgoing.append(Outgoing(
            self.update.channel, text, to=self.update.sender, update_key=self.update.key, kind=outbox.WELCOME,
            priority=outbox.WELCOME_PRIORITY,
            meta={"welcome_code": code, "expires_at": (self.update.at + WELCOME_CODE_TTL).isoformat()},
        ))

    def send(self, text: str, *, chat: str | None = None, to: str | None = None, channel: str | None = None) -> None:
        """Queue a message to a group (``chat``) or a member (``to``), on ``channel`` (default:
        the update's; an operator's decision goes out on the member's own channel)."""
        if chat is None and to is None:
            raise ValueError("send needs a chat or a member")
        if self.update.page and chat is None and to == self.update.sender and channel in (None, self.update.channel):
            self.shown.append(text)  # the member is on the page: told there (a level-up)
            return
        self.outgoing.append(Outgoing(channel or self.update.channel, text, chat=chat, to=to,
                                      update_key=self.update.key))
