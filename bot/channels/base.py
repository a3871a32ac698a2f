"""The channel contract: a name, capabilities, a send rate, ``send`` and its HTTP routes.

Features ask for a capability ("send to this group"), never for a channel by name, because
WeCom cannot post freely into customer groups and each channel can do different things.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from aiohttp import web

from storage.outbox import Claimed

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.config import Config, Setting
    from bot.jobs import Job


class Capability(StrEnum):
    RECEIVE_GROUP = "receive_group"
    RECEIVE_PRIVATE = "receive_private"
    SEND_GROUP = "send_group"
    # Groups reached only through owner tasks: mass-send tasks the group's owner confirms, under
    # a receive quota (WeCom customer groups, DESIGN §3).
    SEND_OWNER_TASK = "send_owner_task"
    SEND_PRIVATE = "send_private"
    WELCOME_MEMBER = "welcome_member"


def cap_bytes(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` UTF-8 bytes on a character boundary, marking the cut."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - len("…".encode())].decode("utf-8", errors="ignore") + "…"


class DeliveryError(Exception):
    """A send failed. ``retryable`` says whether trying again can help; ``retry_after`` is
    the channel's own word on when (a rate limit)."""

    def __init__(self, reason: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class Held(Exception):
    """Not sent, and not to be sent now: the platform's window is closed (微信客服's 48 h / 5
    messages). The row waits, ``reason`` recorded, until the channel releases it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class HandedToOwner:
    """The platform did not send: it made a task a person must confirm (a WeCom group owner
    confirming a mass-send). ``meta`` records what is needed to follow the task up."""

    meta: dict[str, Any]


@dataclass(frozen=True)
class ProbablyDelivered:
    """Sent, as far as can be told, though the platform never said so: a retry after an answer
    that was lost (a timeout, a network error) was refused as already done, such as a WeCom
    welcome code already used. The row is delivered, and ``reason`` kept on it."""

    reason: str


class Channel(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    #: At most this many sends per second through this channel (None: no limit).
    rate_per_s: float | None = None

    @abstractmethod
    async def send(self, message: Claimed) -> HandedToOwner | ProbablyDelivered | None:
        """Deliver one outbox message (return None, or ``ProbablyDelivered`` when only the
        evidence says so), hand it to a person (``HandedToOwner``), or raise ``DeliveryError``.
        Must not block the loop."""

    # Optional hooks: a channel without routes or connections leaves them as they are.
    def add_routes(self, app: web.Application) -> None:  # noqa: B027
        """Register the channel's inbound HTTP endpoints, if it has any."""

    async def start(self, app: web.Application) -> None:  # noqa: B027
        """Open what the channel needs once the app's database and dispatcher exist."""

    async def stop(self) -> None:  # noqa: B027
        """Finish or hand back in-flight work and close connections."""

    def jobs(self) -> list[Job]:
        """Periodic work of the started channel (following up owner tasks), for the job runner."""
        return []

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True, eq=False)
class ChannelKind:
    """A channel siyu can be built with, registered in the composition root's list: its config
    section, what each channel it runs can do (known without starting it: planners decide by
    it), and how to build them for a config (none when it is switched off)."""

    name: str
    settings: tuple[Setting[Any], ...]
    capabilities: Mapping[str, frozenset[Capability]]
    build: Callable[[Config, Clock], list[Channel]]
    enabled: Callable[[Config], bool]
    texts: Path | None = None
    moved: Mapping[str, str] = field(default_factory=dict)
