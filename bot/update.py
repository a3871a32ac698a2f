"""``Update``: one thing that happened on a channel, in a shape every handler understands."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.context import Context

MEMBER_JOINED = "member_joined"
MEMBER_LEFT = "member_left"
CONTACT_ADDED = "contact_added"
CONTACT_LOST = "contact_lost"  # a contact ended (``Update.ended_by`` says how); lost if it was the last
FLOW_DEADLINE = "flow_deadline"  # a member's flow state ran out of time (from the job runner)


@dataclass(frozen=True, slots=True)
class Update:
    """A message or event from one member, in a group (``chat``) or one-to-one (``chat`` None).

    ``key`` deduplicates: the same platform message always gets the same key (MsgId, else
    sender + time + event), so a retry is recognised and dropped.
    """

    channel: str
    key: str
    sender: str
    at: datetime
    chat: str | None = None
    text: str | None = None
    event: str | None = None
    sender_name: str | None = None
    chat_name: str | None = None
    channel_code: str | None = None  # the channel code (渠道活码, WeCom's State) a contact_added came by
    # WeCom contact_added: the code that lets the brand send one welcome within 20 s, and the
    # staff member the customer added.
    welcome_code: str | None = None
    staff: str | None = None
    # contact_lost: how the staff relationship ended (storage.relationships: staff, customer,
    # transfer). A transfer is a handover, not a loss; None where the channel cannot tell.
    ended_by: str | None = None
    # The channel stored this update in the inbox before answering the platform (WeCom).
    stored: bool = False
    # flow_deadline: which flow, at which row version (a later change makes it moot).
    flow: tuple[str, int] | None = None
    # Sent from a member's web page (the member center) rather than a chat: it goes through the
    # same pipeline as a chat message (dedup by ``key``, the member's lock, the batch's
    # transaction, the outbox), its replies are shown on the page (``Context.shown``), not sent,
    # and it neither counts as speaking nor answers a conversation's question.
    page: bool = False
    # A page's action (redeem, vote ...): run in place of routing the text.
    action: Callable[[Context], Awaitable[None]] | None = None

    @property
    def is_private(self) -> bool:
        return self.chat is None

    @property
    def is_command(self) -> bool:
        return self.text is not None and self.text.startswith("/")

    @property
    def member_key(self) -> tuple[str, str]:
        return (self.channel, self.sender)
