"""Forgetting a member: a person may ask the brand to delete what it holds on them (个人信息保护法
第四十七条). The member row goes, and with it everything that hangs from it: every table that
names a member references ``members`` with ON DELETE CASCADE (sign-ins, the points ledger and
balance, check-ins, redemptions, tags, answers, flows, group memberships, member-center
sessions and visits, KOC applications, staff relationships). Before that, the units their open
redemptions hold go back to stock (a reward is never short of a unit nobody will collect), the
codes they were given leave the pool, and what still waits to be sent to them is dropped.
Photos they uploaded are files: the member center's cleanup removes each file no check-in
names any more."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import kf, outbox, rewards
from storage.community import Member
from storage.sql import rowcount, table_of

M = table_of(Member)
KF_CHANNEL = "wecom_kf"  # 微信客服's members: their conversation window is kept by their id


@dataclass(frozen=True, slots=True)
class Forgotten:
    redemptions_cancelled: int
    messages_dropped: int


async def forget(session: AsyncSession, member_id: int, *, now: datetime) -> Forgotten | None:
    """Delete member ``member_id`` and all the brand holds on them; None if there is none."""
    found = (await session.execute(select(M.c.channel, M.c.external_id).where(M.c.id == member_id))).first()
    if found is None:
        return None
    X = rewards.X
    open_ = (await session.execute(select(X.c.id).where(
        X.c.member_id == member_id, X.c.status.in_((rewards.RESERVED, rewards.AWAITING_APPROVAL))))).scalars().all()
    for redemption in open_:
        await rewards.cancel(session, redemption, now=now)
    # A code handed out stays spent (the person may still use the coupon): it leaves the pool
    # rather than becoming free for someone else.
    await session.execute(delete(rewards.C).where(rewards.C.c.redemption_id.in_(
        select(X.c.id).where(X.c.member_id == member_id))))
    queued = outbox.T
    dropped = rowcount(await session.execute(delete(queued).where(
        queued.c.channel == found.channel, queued.c.to == found.external_id, queued.c.status == outbox.PENDING)))
    if found.channel == KF_CHANNEL:
        await session.execute(delete(kf.S).where(kf.S.c.external_userid == found.external_id))
    await session.execute(delete(M).where(M.c.id == member_id))
    return Forgotten(len(open_), dropped)
