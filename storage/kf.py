"""微信客服 state: sync cursors per account and each user's send window."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from storage.sql import table_of
from storage.types import utc_field
from storage.upsert import insert_for


class KfCursor(SQLModel, table=True):
    """微信客服: where ``kf/sync_msg`` stopped for one customer-service account, so a restart
    pulls only what is new (advanced only after the page's messages were handled)."""

    __tablename__ = "kf_cursors"

    open_kfid: str = Field(max_length=64, primary_key=True)
    cursor: str = Field(max_length=256)
    updated_at: datetime = utc_field()


class KfSession(SQLModel, table=True):
    """微信客服: a WeChat user's conversation window (wecom.md §3.11): at most 5 messages to
    them within 48 h of their last message, which resets the count."""

    __tablename__ = "kf_sessions"

    external_userid: str = Field(max_length=128, primary_key=True)
    open_kfid: str = Field(max_length=64)
    last_inbound_at: datetime = utc_field()
    sent_since: int = Field(default=0)


C = table_of(KfCursor)
S = table_of(KfSession)
WINDOW = timedelta(hours=48)
PER_WINDOW = 5


async def cursor(session: AsyncSession, open_kfid: str) -> str | None:
    """Where the last pull of the account stopped; None if it was never pulled."""
    return (await session.execute(select(C.c.cursor).where(C.c.open_kfid == open_kfid))).scalar_one_or_none()


async def save_cursor(session: AsyncSession, open_kfid: str, value: str, *, now: datetime) -> None:
    stmt = insert_for(session, C).values(open_kfid=open_kfid, cursor=value, updated_at=now)
    await session.execute(stmt.on_conflict_do_update(index_elements=[C.c.open_kfid],
                                                     set_={"cursor": value, "updated_at": now}))


async def heard(session: AsyncSession, external_userid: str, open_kfid: str, *, at: datetime) -> bool:
    """The user wrote at ``at`` (the message's own send_time): a new window of 48 h and 5
    messages opens from then. A message older than the last one known (history pulled late)
    changes nothing; returns whether the window opened again."""
    stmt = insert_for(session, S).values(external_userid=external_userid, open_kfid=open_kfid, last_inbound_at=at,
                                         sent_since=0)
    stmt = stmt.on_conflict_do_update(index_elements=[S.c.external_userid],
                                      set_={"open_kfid": open_kfid, "last_inbound_at": at, "sent_since": 0},
                                      where=S.c.last_inbound_at <= at)  # two in one second: both count
    return (await session.execute(stmt.returning(S.c.external_userid))).first() is not None


async def take_slot(session: AsyncSession, external_userid: str, *, now: datetime) -> tuple[str | None, str | None]:
    """Use one of the user's window slots: (open_kfid, None) if a message may go out now, or
    (None, why not). The conditional update is the guard: two senders cannot both take the last."""
    row = (await session.execute(
        update(S).where(S.c.external_userid == external_userid, S.c.last_inbound_at > now - WINDOW,
                        S.c.sent_since < PER_WINDOW)
        .values(sent_since=S.c.sent_since + 1).returning(S.c.open_kfid)
    )).first()
    if row is not None:
        return row.open_kfid, None
    known = await session.get(KfSession, external_userid)
    if known is None:
        return None, "this WeChat user never wrote to 微信客服: nothing can be sent before they do"
    if known.last_inbound_at <= now - WINDOW:
        return None, "the 48 h window since the user's last message is closed: held until they write again"
    return None, f"{PER_WINDOW} messages already sent since the user's last message: held until they write again"
