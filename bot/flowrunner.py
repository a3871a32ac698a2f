"""What the kernel needs from the flow engine (``flows.runner.FlowEngine``): the dispatcher
routes one-to-one messages to it and features start and move flows through it, while the
kernel imports nothing from ``flows``."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bot.context import Context
    from flows.engine import Flow


class FlowRunner(Protocol):
    """What the dispatcher and features need from the flow engine (``flows.runner.FlowEngine``)."""

    @property
    def flows(self) -> Mapping[str, Flow]:
        """The flow definitions by name."""
        ...

    async def handle(self, ctx: Context) -> bool:
        """Offer a one-to-one message; True when the member's active flow took it."""
        ...

    async def on_deadline(self, ctx: Context) -> None:
        """A ``flow_deadline`` update: a state of a member's flow ran out of time."""
        ...

    async def current_prompt(self, ctx: Context) -> str | None:
        """The question the member's active flow waits on, if any."""
        ...

    async def give_way(self, ctx: Context) -> None:
        """A command is about to run: an active flow that steps aside for commands is left."""
        ...

    async def prefetch(self, ctxs: list[Context]) -> None:
        """Load what ``handle`` needs for a whole batch at once."""
        ...

    async def start(self, ctx: Context, flow_name: str, data: dict[str, Any] | None = None) -> None:
        """Start ``flow_name`` for the sender from its first state."""
        ...

    async def start_for(self, ctx: Context, member_id: int, external_id: str, flow_name: str,
                        data: dict[str, Any] | None = None, *, channel: str | None = None) -> None:
        """Start ``flow_name`` for another member (an operator's invite), on their channel."""
        ...

    def running(self, flow_name: str) -> bool:
        """Whether this bot has the flow ``flow_name``."""
        ...

    async def move(self, ctx: Context, member_id: int, flow_name: str, state: str, *, reason: str) -> None:
        """An operator puts a member in ``state`` of ``flow_name``."""
        ...
