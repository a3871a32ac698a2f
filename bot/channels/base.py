"""The channel contract: a name, capabilities, a send rate, ``send`` and its HTTP routes.

Features ask for a capability ("send to this group"), never for a channel by name, because
WeCom cannot post freely into customer groups and each channel can do different things.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import ClassVar

from aiohttp import web

from storage.outbox import Claimed


class Capability(str, Enum):
    RECEIVE_GROUP = "receive_group"
    RECEIVE_PRIVATE = "receive_private"
    SEND_GROUP = "send_group"
    SEND_PRIVATE = "send_private"
    WELCOME_MEMBER = "welcome_member"


class DeliveryError(Exception):
    """A send failed. ``retryable`` says whether trying again can help; ``retry_after`` is
    the channel's own word on when (a rate limit)."""

    def __init__(self, reason: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


class Channel(ABC):
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    #: At most this many sends per second through this channel (None: no limit).
    rate_per_s: float | None = None

    @abstractmethod
    async def send(self, message: Claimed) -> None:
        """Deliver one outbox message or raise ``DeliveryError``. Must not block the loop."""

    def add_routes(self, app: web.Application) -> None:
        """Register the channel's inbound HTTP endpoints, if it has any."""

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities
