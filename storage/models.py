"""The tables of siyu's core: members, groups, membership, inbox, outbox, audit log.

Later features add their own modules of tables; every table is created by an Alembic migration,
never by ``create_all``.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


def _at(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


class Member(SQLModel, table=True):
    """A person the brand talks to, as one channel knows them (sandbox `from`, WeCom userid...)."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_members_channel_external"),
        Index("ix_members_first_seen", "first_seen_at"),  # new members per day (console)
        Index("ix_members_lost", "lost_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    name: Optional[str] = Field(default=None, max_length=128)
    # The channel code (渠道活码 State) the member first came from.
    source_state: Optional[str] = Field(default=None, max_length=64)
    status: str = Field(default="active", max_length=16)  # active | lost
    lost_at: Optional[datetime] = _at(default=None)  # when the contact was deleted (status lost)
    message_count: int = Field(default=0)
    first_seen_at: datetime = _at()
    last_seen_at: datetime = _at()
    # Lifecycle stage (泛用户 / 精准用户 / 核心用户 / 超级用户), kept by a job (handlers.lifecycle).
    stage: Optional[str] = Field(default=None, max_length=8, index=True)
    # Profile answers (onboarding: city, age ...; consent to receive messages).
    attributes: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"),
    )


class Group(SQLModel, table=True):
    """A chat group (customer group, internal group, sandbox group)."""

    __tablename__ = "chat_groups"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_chat_groups_channel_external"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=128)
    name: Optional[str] = Field(default=None, max_length=128)
    status: str = Field(default="active", max_length=16)  # active | dismissed
    message_count: int = Field(default=0)
    created_at: datetime = _at()
    last_active_at: datetime = _at()
    # WeCom customer groups: the owner (a staff userid, who confirms mass-send tasks) and the
    # member-list version of the last event applied (a mismatch means one was missed).
    owner: Optional[str] = Field(default=None, max_length=128)
    member_version: Optional[str] = Field(default=None, max_length=64)


class GroupMembership(SQLModel, table=True):
    """Whether a member is in a group, since when, and how much they speak there."""

    __tablename__ = "group_memberships"
    __table_args__ = (Index("ix_group_memberships_left", "left_at"),)

    group_id: int = Field(sa_column=Column(Integer, ForeignKey("chat_groups.id", ondelete="CASCADE"), primary_key=True))
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True, index=True))
    joined_at: datetime = _at()
    left_at: Optional[datetime] = _at(default=None)  # None while the member is in the group
    last_spoke_at: Optional[datetime] = _at(default=None)
    message_count: int = Field(default=0)


class InboundUpdate(SQLModel, table=True):
    """One row per inbound update, keyed by its dedup key: a repeat cannot be inserted twice.

    Channels that answer before handling (WeCom) store the payload and set ``handled_at`` later,
    so a restart resumes exactly the unhandled rows.
    """

    __tablename__ = "inbox"
    __table_args__ = (Index("ix_inbox_unhandled", "handled_at", "id"),)

    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    channel: str = Field(max_length=32)
    received_at: datetime = _at()
    payload: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    handled_at: Optional[datetime] = _at(default=None)
    error: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    # Handling attempts that failed: bounded, then the row is closed with its error.
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class OutboxMessage(SQLModel, table=True):
    """A message the bot will send (or sent). Written in the transaction of the update that made it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "priority", "not_before"),
        Index("ix_outbox_chat", "channel", "chat", "id"),
        Index("ix_outbox_to", "channel", "to", "id"),
        Index("ix_outbox_update", "update_key"),
    )

    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    update_key: Optional[str] = Field(default=None, max_length=200)
    channel: str = Field(max_length=32)
    chat: Optional[str] = Field(default=None, max_length=128)  # group external id; None = one-to-one
    to: Optional[str] = Field(default=None, max_length=128)  # member external id
    text: str = Field(sa_column=Column(Text, nullable=False))
    # text | welcome (answers a WeCom welcome code, valid 20 s: sent before everything else)
    kind: str = Field(default="text", max_length=16)
    priority: int = Field(default=0)
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # pending | sending | delivered | awaiting_owner (a WeCom task the group owner must confirm) | failed
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    not_before: datetime = _at()
    claimed_until: Optional[datetime] = _at(default=None)
    last_error: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _at()
    delivered_at: Optional[datetime] = _at(default=None)


class AuditEntry(SQLModel, table=True):
    """Append-only: who did what to whom, with which arguments, and what came of it."""

    __tablename__ = "audit_log"

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = _at(index=True)
    actor: str = Field(max_length=160)  # "channel:external_id", or "system"
    action: str = Field(max_length=64)
    args: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: str = Field(max_length=16)  # ok | refused | error
    detail: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))


class MemberTag(SQLModel, table=True):
    """A tag on a member: from the channel code they came by, or given by an operator."""

    __tablename__ = "member_tags"

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    tag: str = Field(sa_column=Column(String(64), primary_key=True))
    source: str = Field(max_length=32)  # channel_code | operator | ...
    created_at: datetime = _at()


class AccessToken(SQLModel, table=True):
    """Platform access tokens, shared by every process so only one of them asks for a new one."""

    __tablename__ = "access_tokens"

    key: str = Field(primary_key=True, max_length=200)  # corp id + a digest of the secret, never the secret
    token: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime = _at()


class MemberFlow(SQLModel, table=True):
    """Where a member stands in one conversation flow: one row per (member, flow)."""

    __tablename__ = "member_flows"
    # by flow: the console's KOC funnel counts one flow's rows without reading all of them
    __table_args__ = (Index("ix_member_flows_deadline", "deadline_at"), Index("ix_member_flows_flow", "flow", "state"))

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    flow: str = Field(sa_column=Column(String(64), primary_key=True))
    state: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Bumped by every change: a writer that read an older version lost a race and must not save.
    version: int = Field(default=0)
    # The flow that takes the member's free text (one at a time).
    active: bool = Field(default=False)
    # Deadlines run from entering the state; each of the state's deadlines fires once.
    entered_at: datetime = _at()
    deadlines_fired: int = Field(default=0)
    deadline_at: Optional[datetime] = _at(default=None)
    started_at: datetime = _at()
    updated_at: datetime = _at()
    finished_at: Optional[datetime] = _at(default=None)


class KocApplication(SQLModel, table=True):
    """A member's KOC screening result, waiting for (or carrying) an operator's decision."""

    __tablename__ = "koc_applications"
    __table_args__ = (Index("ix_koc_applications_status", "status", "created_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False, index=True))
    score: int
    recommended_type: str = Field(max_length=16)  # 分享官 | 内容官 | 体验官 | 带货官
    answers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)  # pending | approved | rejected
    approved_type: Optional[str] = Field(default=None, max_length=16)
    decided_by: Optional[str] = Field(default=None, max_length=160)
    reason: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _at()
    decided_at: Optional[datetime] = _at(default=None)


class PointEntry(SQLModel, table=True):
    """The points ledger: append-only. Every change of a balance is one entry with a unique key,
    so a retried credit or spend is refused instead of counted twice."""

    __tablename__ = "point_entries"
    __table_args__ = (
        Index("ix_point_entries_member", "member_id", "id"),
        Index("ix_point_entries_period", "kind", "created_at", "member_id"),  # leaderboards
    )

    id: Optional[int] = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False))
    delta: int
    # earn (sign-in, tasks: what leaderboards count) | grant | refund | spend | deduct | expire
    kind: str = Field(default="earn", max_length=16, sa_column_kwargs={"server_default": "earn"})
    reason: str = Field(max_length=200)
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    issuer: Optional[str] = Field(default=None, max_length=160)
    created_at: datetime = _at()


class PointLot(SQLModel, table=True):
    """Points credited together; spending takes the oldest lots first, and a lot may expire."""

    __tablename__ = "point_lots"
    __table_args__ = (Index("ix_point_lots_spendable", "member_id", "remaining"), Index("ix_point_lots_expiry", "expires_at"))

    id: Optional[int] = Field(default=None, primary_key=True)
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False))
    entry_id: int = Field(sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), ForeignKey("point_entries.id"), nullable=False))
    amount: int
    remaining: int
    expires_at: Optional[datetime] = _at(default=None)
    # A pending lot (e.g. until a return window closes) is counted in ``pending``, not in the
    # balance, until the sweeper releases it at this time; None once released (or never pending).
    available_at: Optional[datetime] = _at(default=None)
    created_at: datetime = _at()


class PointBalance(SQLModel, table=True):
    """The balance, changed in the same transaction as the entries: balance + pending equals the
    sum of the entries and of the lots' remaining points, and neither is negative (CHECKs)."""

    __tablename__ = "point_balances"
    __table_args__ = (
        CheckConstraint("balance >= 0", name="ck_point_balances_not_negative"),
        CheckConstraint("pending >= 0", name="ck_point_balances_pending_not_negative"),
    )

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    balance: int = Field(default=0)
    pending: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # credited, not yet spendable
    lifetime: int = Field(default=0)  # all points ever earned (levels are by lifetime points)


class Checkin(SQLModel, table=True):
    """A daily sign-in: one per member per local day."""

    __tablename__ = "checkins"
    __table_args__ = (Index("ix_checkins_day", "day"),)

    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    streak: int
    points: int
    at: datetime = _at()


class Reward(SQLModel, table=True):
    """A reward in the points catalog. Its units are always stock + reserved + fulfilled."""

    __tablename__ = "rewards"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="ck_rewards_stock_not_negative"),
        CheckConstraint("reserved >= 0", name="ck_rewards_reserved_not_negative"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    cost: int
    stock: int  # units left to redeem
    reserved: int = Field(default=0)  # redeemed, waiting to be handed over
    fulfilled: int = Field(default=0)
    per_member_limit: int = Field(default=0)  # 0: no limit
    active: bool = Field(default=True)
    min_level: Optional[str] = Field(default=None, max_length=16)  # a tier name from [levels]
    starts_at: Optional[datetime] = _at(default=None)  # redeemable from / until (None: always)
    ends_at: Optional[datetime] = _at(default=None)
    # A redemption waits for an operator's approval before it counts as reserved (high value).
    approval: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # manual: an operator hands it over | code: a code from the pool, handed over at once
    fulfilment: str = Field(default="manual", max_length=8, sa_column_kwargs={"server_default": "manual"})
    created_at: datetime = _at()


class Redemption(SQLModel, table=True):
    """A member's redemption: points and one unit reserved together, then fulfilled or cancelled."""

    __tablename__ = "redemptions"
    __table_args__ = (Index("ix_redemptions_member_reward", "member_id", "reward_id"), Index("ix_redemptions_created", "created_at"))

    id: Optional[int] = Field(default=None, primary_key=True)
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False))
    reward_id: int = Field(sa_column=Column(Integer, ForeignKey("rewards.id"), nullable=False))
    cost: int
    # awaiting_approval | reserved | fulfilled | cancelled: points and the unit are held from the start
    status: str = Field(default="reserved", max_length=20)
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    code: Optional[str] = Field(default=None, max_length=128)  # a code-pool reward's code
    created_at: datetime = _at()
    settled_at: Optional[datetime] = _at(default=None)


class RewardCode(SQLModel, table=True):
    """One code of a virtual reward's pool (a coupon, a member-card code): given out once."""

    __tablename__ = "reward_codes"
    __table_args__ = (
        UniqueConstraint("reward_id", "code", name="uq_reward_codes_reward_code"),
        Index("ix_reward_codes_free", "reward_id", "redemption_id"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    reward_id: int = Field(sa_column=Column(Integer, ForeignKey("rewards.id", ondelete="CASCADE"), nullable=False))
    code: str = Field(max_length=128)
    redemption_id: Optional[int] = Field(default=None, sa_column=Column(Integer, ForeignKey("redemptions.id"), nullable=True, unique=True))


class Poll(SQLModel, table=True):
    """A vote on the next rewards: the options are candidate rewards; the winners enter the catalog."""

    __tablename__ = "polls"
    __table_args__ = (Index("ix_polls_status", "status", "closes_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    title: str = Field(max_length=64)
    # [{"name", "cost", "stock"}], numbered from 1 in chat
    options: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    winners: int = Field(default=1)  # how many of the most voted options enter the catalog
    status: str = Field(default="open", max_length=8)  # open | closed
    opened_by: str = Field(max_length=160)
    opened_at: datetime = _at()
    closes_at: Optional[datetime] = _at(default=None)
    closed_at: Optional[datetime] = _at(default=None)


class PollVote(SQLModel, table=True):
    """A member's vote: one per poll (the primary key); a new vote replaces the old one."""

    __tablename__ = "poll_votes"

    poll_id: int = Field(sa_column=Column(Integer, ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True))
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    option: int  # 1-based
    at: datetime = _at()


class Announcement(SQLModel, table=True):
    """A job's message made once: the key (``sop:入群次日:member:42``) is claimed in the same
    transaction as the message it queues, so a restart or a second process never repeats it."""

    __tablename__ = "announcements"

    key: str = Field(max_length=200, primary_key=True)
    at: datetime = _at()


class TaskCheckin(SQLModel, table=True):
    """A task check-in (打卡): credited at once, or waiting for an operator when the task says so."""

    __tablename__ = "task_checkins"
    __table_args__ = (Index("ix_task_checkins_member_task", "member_id", "task", "at"), Index("ix_task_checkins_at", "at"))

    id: Optional[int] = Field(default=None, primary_key=True)
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False))
    task: str = Field(max_length=64)
    points: int
    proof: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(default="credited", max_length=16)  # credited | pending | rejected
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})
    at: datetime = _at()


class OperatorRole(SQLModel, table=True):
    """A role (viewer, operator, admin) held by someone as a channel knows them; channel ``*``:
    on every channel (the admins seeded from ``[operators] admins``)."""

    __tablename__ = "operator_roles"

    channel: str = Field(max_length=32, primary_key=True)
    external_id: str = Field(max_length=128, primary_key=True)
    role: str = Field(max_length=16)
    granted_by: str = Field(max_length=160)
    granted_at: datetime = _at()


class TaskDefinition(SQLModel, table=True):
    """A task members check in to (打卡): from ``[[tasks]]`` (its rules follow the config at
    every start) or added by an operator (``/task add``)."""

    __tablename__ = "task_definitions"

    name: str = Field(max_length=64, primary_key=True)
    position: int = Field(default=0)  # the order of the menu
    points: int
    per_day: int = Field(default=1)
    per_week: int = Field(default=0)
    per_month: int = Field(default=0)
    proof: bool = Field(default=False)
    approval: bool = Field(default=False)
    pending_days: int = Field(default=0)
    koc_types: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = Field(default=True)
    source: str = Field(default="config", max_length=160)  # config, or the operator who added it


class KfCursor(SQLModel, table=True):
    """微信客服: where ``kf/sync_msg`` stopped for one customer-service account, so a restart
    pulls only what is new (advanced only after the page's messages were handled)."""

    __tablename__ = "kf_cursors"

    open_kfid: str = Field(max_length=64, primary_key=True)
    cursor: str = Field(max_length=256)
    updated_at: datetime = _at()


class KfSession(SQLModel, table=True):
    """微信客服: a WeChat user's conversation window (wecom.md §3.11): at most 5 messages to
    them within 48 h of their last message, which resets the count."""

    __tablename__ = "kf_sessions"

    external_userid: str = Field(max_length=128, primary_key=True)
    open_kfid: str = Field(max_length=64)
    last_inbound_at: datetime = _at()
    sent_since: int = Field(default=0)
