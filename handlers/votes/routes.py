"""Votes on the next rewards (投票). Operators open a poll of candidate rewards
(``/vote open``); members see it with "投票" and vote with "投票 <编号>" (one vote per poll, a
new one replaces the old); at its closing time (or ``/vote close``) the results go to the
groups and the most voted options enter the catalog."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import filters
from bot.commandline import UsageError, split
from bot.config import Config
from bot.context import Context
from bot.numbers import parse_id, parse_int
from bot.router import Keyword, Router
from bot.texts import Texts
from handlers.votes.services import cast
from storage import audit, community, outbox, polls, rewards
from storage.engine import Database

log = logging.getLogger("siyu.votes")
router = Router("votes")
VOTE = re.compile(r"^投票\s*(\d{1,3})?$")
OPTION = re.compile(r"^(?P<name>[^:：]{1,64})[:：](?P<cost>\d{1,8})[:：](?P<stock>\d{1,7})$")
MAX_HOURS = 24 * 30


def _option_lines(texts: Texts, poll: Any, counts: dict[int, int] | None = None) -> str:
    return "\n".join(texts("vote_line", option=i, name=o["name"], cost=o["cost"],
                           votes=(counts or {}).get(i, 0)) for i, o in enumerate(poll.options, 1))


@router.message(filters.Regex(VOTE), keyword=Keyword("投票", "vote_about"))
async def vote(ctx: Context) -> None:
    match = VOTE.match((ctx.update.text or "").strip())
    assert match is not None
    poll = await polls.current(ctx.session)
    if poll is None:
        ctx.reply(ctx.texts("vote_none"))
        return
    if match.group(1) is None:
        counts = {t.option: t.votes for t in await polls.tally(ctx.session, poll)}
        ctx.reply(ctx.texts("vote_show", title=poll.title, lines=_option_lines(ctx.texts, poll, counts)))
        return
    await cast(ctx, poll.id, int(match.group(1)))


def parse_open(args: str) -> tuple[str, list[dict[str, Any]], int, int | None]:
    """``标题 名称:积分:库存 ... [winners=N] [hours=H]`` → (title, options, winners, hours);
    ValueError names what is wrong."""
    try:
        words = split(args)
    except UsageError as exc:
        raise ValueError(exc.problem) from None
    options: list[dict[str, Any]] = []
    settings = {"winners": "1", "hours": ""}
    title = ""
    for word in words:
        key, eq, value = word.partition("=")
        if eq and key in settings:
            settings[key] = value
        elif (m := OPTION.match(word)) is not None:
            options.append({"name": m["name"].strip(), "cost": int(m["cost"]), "stock": int(m["stock"])})
        elif not title and not options:
            title = word
        else:
            raise ValueError(f"看不懂「{word[:32]}」：选项写成 名称:积分:库存")
    if not title or len(title) > 64:
        raise ValueError("需要一个标题（1 到 64 个字）")
    if not 2 <= len(options) <= 20 or len({o["name"] for o in options}) != len(options):
        raise ValueError("需要 2 到 20 个不同的选项")
    if any(o["cost"] <= 0 for o in options):
        raise ValueError("选项的积分要大于 0")
    winners = parse_int(settings["winners"], 1, len(options))
    if winners is None:
        raise ValueError(f"winners 要在 1 到 {len(options)} 之间")
    hours = parse_int(settings["hours"], 1, MAX_HOURS) if settings["hours"] else None
    if settings["hours"] and hours is None:
        raise ValueError(f"hours 要在 1 到 {MAX_HOURS} 之间")
    return title, options, winners, hours


async def _to_groups(session: AsyncSession, text: str, *, now: datetime, job: str) -> int:
    groups = await community.active_groups(session)
    await outbox.enqueue(session, [outbox.Outgoing(g.channel, text, chat=g.external_id, meta={"job": job})
                                   for g in groups], now=now)
    return len(groups)


async def finish(session: AsyncSession, texts: Texts, poll_id: int, *, now: datetime) -> tuple[list[str], int] | None:
    """Close the poll once: the winners enter the catalog and the results go to every group.
    Returns (winners' names, groups told), or None if it was not open."""
    tally = await polls.close(session, poll_id, now=now)
    if tally is None:
        return None
    poll = await polls.get(session, poll_id)
    assert poll is not None
    voted = [t for t in tally if t.votes > 0]
    winners = voted[: poll.winners]
    for t in winners:
        o = poll.options[t.option - 1]
        await rewards.add(session, rewards.RewardSpec(o["name"], o["cost"], o["stock"]), now=now)
    results = "\n".join(texts("vote_result_line", name=t.name, votes=t.votes) for t in tally)
    if winners and len(voted) > len(winners) and voted[len(winners)].votes == winners[-1].votes:
        # A tie across the cut: say how it was settled (the lower option number), not just who won.
        tied = "、".join(f"「{t.name}」" for t in voted if t.votes == winners[-1].votes)
        results += "\n" + texts("vote_tie", names=tied)
    names = "、".join(f"「{t.name}」" for t in winners) or texts("vote_no_winner")
    told = await _to_groups(session, texts("vote_results", title=poll.title, lines=results, winners=names),
                            now=now, job=f"poll:{poll_id}:results")
    return [t.name for t in winners], told


@router.command("vote", role="operator")
async def vote_command(ctx: Context) -> None:
    """开启或结束奖品投票（选出的奖品上架积分商城）
    /vote open <标题> <名称:积分:库存> <名称:积分:库存> ... [winners=1] [hours=48]
    /vote close [编号]"""
    action, _, rest = ctx.args.strip().partition(" ")
    actor = ctx.actor
    if action == "open":
        try:
            title, options, winners, hours = parse_open(rest)
        except ValueError as exc:
            ctx.reply(ctx.texts("command_bad_args", problem=str(exc), usage=ctx.texts("vote_usage")))
            return
        closes_at = ctx.now + timedelta(hours=hours) if hours else None
        poll_id = await polls.open_poll(ctx.session, title=title, options=options, winners=winners, opened_by=actor,
                                        now=ctx.now, closes_at=closes_at)
        poll = await polls.get(ctx.session, poll_id)
        told = await _to_groups(ctx.session, ctx.texts("vote_announce", title=title,
                                                       lines=_option_lines(ctx.texts, poll)),
                                now=ctx.now, job=f"poll:{poll_id}:open")
        await audit.record(ctx.session, actor=actor, action="vote.open", result="ok", now=ctx.now,
                           args={"poll": poll_id, "title": title, "options": options, "winners": winners,
                                 "hours": hours})
        ctx.reply(ctx.texts("vote_opened", id=poll_id, title=title, count=len(options), groups=told))
    elif action == "close":
        wanted = parse_id(rest.strip())
        if rest.strip() and wanted is None:  # not a poll's number: close nothing rather than the current one
            ctx.reply(ctx.texts("vote_usage"))
            return
        poll = await (polls.get(ctx.session, wanted) if wanted is not None else polls.current(ctx.session))
        done = await finish(ctx.session, ctx.texts, poll.id, now=ctx.now) if poll is not None else None
        await audit.record(ctx.session, actor=actor, action="vote.close", result="ok" if done else "refused",
                           now=ctx.now, args={"poll": poll.id if poll else rest.strip()})
        if done is None or poll is None:
            ctx.reply(ctx.texts("vote_none"))
            return
        names = "、".join(f"「{n}」" for n in done[0]) or ctx.texts("vote_no_winner")
        ctx.reply(ctx.texts("vote_closed_report", id=poll.id, winners=names, groups=done[1]))
    else:
        ctx.reply(ctx.texts("vote_usage"))


async def close_due(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """Close the polls whose time is up; returns how many were closed."""
    async with db.read() as session:
        due = await polls.due(session, now=now)
    closed = 0
    for poll_id in due:
        async with db.transaction() as session:
            if await finish(session, texts, poll_id, now=now) is not None:
                closed += 1
                log.info("poll %d closed at its time", poll_id)
    return closed
