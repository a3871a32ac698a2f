"""Where a member-center link was sent (a campaign: a playbook or broadcast, and the group) and
who opened the member center through it (visits, one row per member, local day and campaign).

A link carries the campaign's random code (``?c=``), not its name: a member cannot make up a
campaign, nor inflate another's figures by editing the link, and no member id is in it.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Column, Date, ForeignKey, Index, Integer, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.community import Group
from storage.rewards import Redemption
from storage.signins import CHAT, PAGE, SignIn
from storage.sql import table_of
from storage.types import utc_field
from storage.upsert import insert_for

CODE = re.compile(r"[A-Za-z0-9_-]{8}")  # what ``secrets.token_urlsafe(6)`` gives


class Campaign(SQLModel, table=True):
    """A link's campaign: ``source`` names what sent it (``sop:<playbook>``, ``broadcast:<id>``,
    ``welcome``), ``group_id`` the group it went to (None: one-to-one)."""

    __tablename__ = "member_center_campaigns"

    id: int = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, sa_column_kwargs={"unique": True})
    key: str = Field(max_length=200, sa_column_kwargs={"unique": True})  # source and group: one code each
    source: str = Field(max_length=128)
    group_id: int | None = Field(default=None, sa_column=Column(
        Integer, ForeignKey("chat_groups.id", ondelete="SET NULL"), nullable=True))
    created_at: datetime = utc_field()


class Visit(SQLModel, table=True):
    """A member opened the member center through a campaign's link on a local day."""

    __tablename__ = "member_center_visits"
    __table_args__ = (Index("ix_member_center_visits_campaign", "campaign_id", "day"),)

    day: date = Field(sa_column=Column(Date, primary_key=True))
    member_id: int = Field(sa_column=Column(Integer, ForeignKey("members.id", ondelete="CASCADE"), primary_key=True))
    campaign_id: int = Field(sa_column=Column(Integer, ForeignKey("member_center_campaigns.id", ondelete="CASCADE"),
                                              primary_key=True))
    first_at: datetime = utc_field()
    last_at: datetime = utc_field()
    opens: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))


C, V = table_of(Campaign), table_of(Visit)
S, X = table_of(SignIn), table_of(Redemption)


async def code_for(session: AsyncSession, source: str, group_id: int | None, *, now: datetime) -> str:
    """The code of (source, group), made the first time it is asked for (concurrent planners
    agree on one: the unique key)."""
    key = f"{source}|{'' if group_id is None else group_id}"[:200]
    found = (await session.execute(select(C.c.code).where(C.c.key == key))).scalar_one_or_none()
    if found is not None:
        return str(found)
    stmt = insert_for(session, C).values(code=secrets.token_urlsafe(6), key=key, source=source[:128],
                                         group_id=group_id, created_at=now)
    await session.execute(stmt.on_conflict_do_nothing(index_elements=[C.c.key]))
    return str((await session.execute(select(C.c.code).where(C.c.key == key))).scalar_one())


async def campaign_of(session: AsyncSession, code: str) -> int | None:
    """The campaign of a code from a link, None for one that is garbled or unknown."""
    if not CODE.fullmatch(code):
        return None
    found = (await session.execute(select(C.c.id).where(C.c.code == code))).scalar_one_or_none()
    return int(found) if found is not None else None


async def record_visit(session: AsyncSession, member_id: int, campaign_id: int, day: date, *, now: datetime) -> None:
    """Count the member's visit through the campaign on ``day`` once (later opens move ``last_at``)."""
    stmt = insert_for(session, V).values(day=day, member_id=member_id, campaign_id=campaign_id, first_at=now,
                                         last_at=now, opens=1)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[V.c.day, V.c.member_id, V.c.campaign_id],
        set_={"last_at": stmt.excluded.last_at, "opens": V.c.opens + 1}))


@dataclass(frozen=True)
class Figures:
    visits: int  # (member, day, campaign) rows
    members: int  # distinct members who came through a link
    signins: dict[str, int]  # via -> sign-ins (None, before surfaces were recorded: "")
    redemptions: dict[str, int]


@dataclass(frozen=True)
class CampaignRow:
    source: str
    group: str  # the group's name, or its id, or "" (one-to-one)
    visits: int
    members: int
    signins: int  # sign-ins on the page by members who came through the link that day


async def figures(session: AsyncSession, first: date, last: date, start: datetime, end: datetime) -> Figures:
    """The member center's figures for local days ``first``..``last`` (``start``..``end`` in UTC)."""
    visits, members = (await session.execute(
        select(func.count(), func.count(distinct(V.c.member_id))).where(V.c.day >= first, V.c.day <= last))).one()
    signins = {str(via or ""): int(n) for via, n in (await session.execute(
        select(S.c.via, func.count()).where(S.c.day >= first, S.c.day <= last).group_by(S.c.via))).all()}
    redemptions = {str(via or ""): int(n) for via, n in (await session.execute(
        select(X.c.via, func.count()).where(X.c.created_at >= start, X.c.created_at < end)
        .group_by(X.c.via))).all()}
    return Figures(int(visits), int(members), signins, redemptions)


async def by_campaign(session: AsyncSession, first: date, last: date, *, limit: int = 50) -> list[CampaignRow]:
    """Visits, members and page sign-ins per campaign (most visited first)."""
    g = table_of(Group)
    signed = (select(V.c.campaign_id, func.count().label("n"))
              .join(S, (S.c.member_id == V.c.member_id) & (S.c.day == V.c.day) & (S.c.via == PAGE))
              .where(V.c.day >= first, V.c.day <= last).group_by(V.c.campaign_id).subquery())
    seen = (select(V.c.campaign_id, func.count().label("visits"), func.count(distinct(V.c.member_id)).label("members"))
            .where(V.c.day >= first, V.c.day <= last).group_by(V.c.campaign_id).subquery())
    rows = (await session.execute(
        select(C.c.source, g.c.name, g.c.external_id, seen.c.visits, seen.c.members, func.coalesce(signed.c.n, 0))
        .join(seen, seen.c.campaign_id == C.c.id).outerjoin(signed, signed.c.campaign_id == C.c.id)
        .outerjoin(g, g.c.id == C.c.group_id).order_by(seen.c.visits.desc(), C.c.id).limit(limit))).all()
    return [CampaignRow(str(source), str(name or external or ""), int(v), int(m), int(n))
            for source, name, external, v, m, n in rows]


__all__ = ["CHAT", "CODE", "PAGE", "Campaign", "CampaignRow", "Figures", "Visit", "by_campaign",
           "campaign_of", "code_for", "figures", "record_visit"]
