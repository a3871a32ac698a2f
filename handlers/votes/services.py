"""Votes (投票) for every surface: a member's vote (the chat's 「投票 编号」 and the member
center's button both vote through ``cast``), and the polls and results a page shows."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.context import Context
from storage import polls
from storage.polls import Poll, Tally

__all__ = ["Poll", "Tally", "cast", "closed", "current", "get", "mine", "tally"]

REFUSALS = {"bad_option": "vote_bad_option", "closed": "vote_closed", "no_poll": "vote_none"}


async def cast(ctx: Context, poll_id: int, option: int) -> bool:
    """The member votes for ``option`` (1-based) of poll ``poll_id``: one vote a poll, changed
    until it closes. What the member is told goes to ``ctx.reply``; False if it did not count
    (no such poll, closed, no such option)."""
    poll = await polls.get(ctx.session, poll_id)
    try:
        if poll is None:
            raise polls.PollError("no_poll")
        before = await polls.vote(ctx.session, poll.id, ctx.member.id, option, now=ctx.now)
    except polls.PollError as exc:
        ctx.reply(ctx.texts(REFUSALS[exc.reason], option=option, count=len(poll.options) if poll else 0))
        return False
    name = poll.options[option - 1]["name"]
    if before is None or before == option:
        ctx.reply(ctx.texts("vote_done", name=name))
    else:
        ctx.reply(ctx.texts("vote_changed", name=name, old=poll.options[before - 1]["name"]))
    return True


async def current(session: AsyncSession) -> Poll | None:
    """The open poll members vote in (the newest)."""
    return await polls.current(session)


async def get(session: AsyncSession, poll_id: int) -> Poll | None:
    return await polls.get(session, poll_id)


async def closed(session: AsyncSession, *, limit: int) -> list[Poll]:
    """The latest closed polls, newest first."""
    return await polls.closed(session, limit=limit)


async def tally(session: AsyncSession, poll: Poll) -> list[Tally]:
    """Every option with its votes, most voted first (ties: the lower number first)."""
    return await polls.tally(session, poll)


async def mine(session: AsyncSession, poll_id: int, member_id: int) -> int | None:
    """The option the member voted for in the poll (None: not voted)."""
    return await polls.vote_of(session, poll_id, member_id)
