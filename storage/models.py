"""Every table of siyu in one import.

Each table lives in the module of the functions that change it (``Member`` in
``storage.community``, ``PointEntry`` in ``storage.points`` ...). This module imports them all,
so that Alembic's metadata (``storage/migrations/env.py``) holds every table, and so that
scripts and tests can take any table from one place. Storage modules import a table from its
own module, never from here.

Autoincrement ids are typed ``int``, SQLAlchemy's convention for primary keys: a row read from
the database always has one, and a new row gets it when it is flushed.
"""
from __future__ import annotations

from storage.audit import AuditEntry
from storage.broadcasts import Broadcast, Delivery, GroupTag, PlaybookState
from storage.campaigns import Campaign, Visit
from storage.community import Group, GroupMembership, Member
from storage.contact_sync import SyncRun
from storage.flows import MemberFlow
from storage.handovers import DepartedStaff, Handover, HandoverItem
from storage.idempotency import IdempotencyKey
from storage.inbox import InboundUpdate
from storage.kf import KfCursor, KfSession
from storage.koc import KocApplication
from storage.member_sessions import MemberSession
from storage.nonces import SeenNonce
from storage.once import OnceKey
from storage.outbox import OutboxMessage
from storage.points import PointBalance, PointEntry, PointLot
from storage.polls import Poll, PollVote
from storage.relationships import StaffRelationship
from storage.rewards import Redemption, Reward, RewardCode
from storage.roles import OperatorRole
from storage.rollups import CohortRetention, DailyMetric, GroupDay, MemberDay, RollupRun
from storage.scheduler_jobs import SchedulerJob
from storage.sessions import ConsoleSession
from storage.signins import SignIn
from storage.tags import MemberTag
from storage.task_definitions import TaskDefinition
from storage.tasks import TaskCheckin
from storage.tokens import AccessToken

__all__ = [
    "AccessToken", "AuditEntry", "Broadcast", "CohortRetention", "ConsoleSession", "DailyMetric", "Delivery",
    "DepartedStaff", "Group", "Handover", "HandoverItem",
    "GroupDay", "GroupMembership", "GroupTag", "IdempotencyKey", "InboundUpdate", "KfCursor", "KfSession",
    "KocApplication", "Member", "MemberDay", "MemberSession", "MemberFlow", "MemberTag", "OnceKey", "OperatorRole",
    "OutboxMessage",
    "PlaybookState", "PointBalance", "PointEntry", "PointLot", "Poll", "PollVote", "Redemption", "Reward", "RewardCode",
    "RollupRun", "SchedulerJob", "SeenNonce", "SignIn", "StaffRelationship", "SyncRun", "TaskCheckin",
    "TaskDefinition",
    "Campaign", "Visit",
]
