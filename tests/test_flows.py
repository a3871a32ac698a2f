"""Per-member flows: whole conversations, deadlines across restarts, races, changed definitions."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot import filters
from bot.appkeys import JOBS
from bot.builtin import FEATURES
from bot.config import Config
from bot.context import Context
from bot.feature import Feature
from bot.router import Router
from bot.testing import FakeClock, SandboxClient, sandbox_app
from flows.engine import Flow, State, not_empty, one_of, remember
from storage.models import AuditEntry, Member, MemberFlow

CITIES = ("北京", "上海", "广州")


def survey(*, with_name_state: bool = True) -> Flow:
    """A three-question example: name (reminded once after 10 minutes, expired an hour later), city."""
    states = [
        State("ask_city", prompt="ask_city"),
        State("done", prompt="done", final=True),
        State("reminded", prompt="reminded", deadline=timedelta(hours=1), on_deadline="expire"),
        State("expired", prompt="expired", final=True),
    ]
    transitions: list[dict[str, Any]] = [
        {"trigger": "answer", "source": "ask_city", "dest": "done", "conditions": [one_of(*CITIES)],
         "before": [remember("city")]},
        {"trigger": "answer", "source": "reminded", "dest": "ask_city", "conditions": [not_empty],
         "before": [remember("name")]},
        {"trigger": "expire", "source": "reminded", "dest": "expired"},
    ]
    if with_name_state:
        states.insert(0, State("ask_name", prompt="ask_name", deadline=timedelta(minutes=10), on_deadline="remind"))
        transitions += [
            {"trigger": "answer", "source": "ask_name", "dest": "ask_city", "conditions": [not_empty],
             "before": [remember("name")]},
            {"trigger": "remind", "source": "ask_name", "dest": "reminded"},
        ]
    return Flow(
        "survey", title="新人问卷", states=states, transitions=transitions, recover_to="ask_city", max_answer=20,
        texts={"ask_name": "怎么称呼你？", "ask_city": "你在哪个城市？1 北京 2 上海 3 广州", "done": "谢谢 {name}！",
               "reminded": "还在吗？怎么称呼你？", "expired": "问卷已过期，下次再聊～"},
    )


def steps(n: int) -> Flow:
    """A line of ``n`` states: each answer moves one step and is recorded in order."""

    def record(event: Any) -> None:
        event.model.data.setdefault("seen", []).append(event.model.state)

    states = [State(f"s{i}", prompt=f"p{i}") for i in range(n)] + [State("end", prompt="end", final=True)]
    names = [s.name for s in states]
    transitions = [{"trigger": "answer", "source": a, "dest": b, "before": [record]}
                   for a, b in zip(names, names[1:], strict=False)]
    return Flow("steps", states=states, transitions=transitions,
                texts={**{f"p{i}": f"第 {i} 步" for i in range(n)}, "end": "完成"})


def ticket() -> Flow:
    """One question; its answer runs two async callbacks, the second telling what the first wrote."""

    async def issue(event: Any) -> None:
        await asyncio.sleep(0)  # the first one waits on something (the database, in life)
        event.model.data["ticket"] = "A1"

    async def tell(event: Any) -> None:
        event.model.ctx.reply(f"票号 {event.model.data.get('ticket', '无')}")

    return Flow("steps", states=[State("ask", prompt="ask"), State("end", final=True)],
                transitions=[{"trigger": "answer", "source": "ask", "dest": "end", "after": [issue, tell]}],
                texts={"ask": "要取号吗？"})


def starter() -> Router:
    router = Router("flow-starters")

    @router.message(filters.Text("开始调查"))
    async def start_survey(ctx: Context) -> None:
        await ctx.flows.start(ctx, "survey")

    @router.message(filters.Text("开始"))
    async def start_steps(ctx: Context) -> None:
        await ctx.flows.start(ctx, "steps")

    @router.command("steps")
    async def steps_command(ctx: Context) -> None:
        """开始分步流程"""
        await ctx.flows.start(ctx, "steps")

    return router


@pytest.fixture
def app_factory(make_config: Callable[..., Config], clock: FakeClock) -> Callable[..., Any]:
    def make(*flows: Flow) -> Any:
        # The test's own feature: a router that starts its flows, and the flows (the shipped
        # features' flows are not there: the shipped routers are).
        feature = Feature("flow_tests", routers=lambda config: [starter()],
                          flows=lambda config: flows or (survey(), steps(5)))
        shipped = tuple(replace(f, flows=lambda config: []) for f in FEATURES)
        return sandbox_app(make_config(features=(feature, *shipped)), clock=clock)

    return make


@pytest.fixture
async def bot(app_factory: Callable[..., Any]) -> AsyncIterator[SandboxClient]:
    async with app_factory() as client:
        yield client


def texts(replies: list[dict[str, Any]]) -> list[str]:
    return [r["text"] for r in replies]


async def flow_row(bot: SandboxClient, sender: str, flow: str) -> MemberFlow:
    async with bot.db.read() as s:
        return (await s.execute(
            select(MemberFlow).join(Member, Member.id == MemberFlow.member_id)
            .where(Member.external_id == sender, MemberFlow.flow == flow)
        )).scalar_one()


async def test_a_whole_conversation(bot: SandboxClient) -> None:
    assert texts(await bot.say("u1", "开始调查")) == ["怎么称呼你？"]
    assert texts(await bot.say("u1", "小王")) == ["你在哪个城市？1 北京 2 上海 3 广州"]
    # An answer outside the choices asks again, with the choices.
    again = texts(await bot.say("u1", "火星"))
    assert len(again) == 1 and "没太明白" in again[0] and "1 北京" in again[0]
    assert texts(await bot.say("u1", "上海")) == ["谢谢 小王！"]
    row = await flow_row(bot, "u1", "survey")
    assert (row.state, row.data, row.active) == ("done", {"name": "小王", "city": "上海"}, False)
    assert row.finished_at is not None
    # Finished: free text is the bot's again (the fallback answers).
    assert "品牌助手" in texts(await bot.say("u1", "你好"))[0]


async def test_a_transitions_callbacks_run_one_after_another_in_order(app_factory: Callable[..., Any]) -> None:
    # They share the update's database session, which takes one statement at a time.
    async with app_factory(ticket()) as bot:
        assert texts(await bot.say("u1", "开始")) == ["要取号吗？"]
        assert texts(await bot.say("u1", "要")) == ["票号 A1"]


async def test_commands_still_work_inside_a_flow_and_help_says_where(bot: SandboxClient) -> None:
    await bot.say("u1", "开始调查")
    assert "/help" in texts(await bot.say("u1", "/help"))[0]
    where = texts(await bot.say("u1", "帮助"))[0]
    assert "新人问卷" in where and "怎么称呼你？" in where
    assert (await flow_row(bot, "u1", "survey")).state == "ask_name"  # neither moved the flow


async def test_leaving_a_flow(bot: SandboxClient) -> None:
    await bot.say("u1", "开始调查")
    assert "已退出「新人问卷」" in texts(await bot.say("u1", "退出"))[0]
    row = await flow_row(bot, "u1", "survey")
    assert not row.active and row.finished_at is not None and row.state == "ask_name"
    assert "品牌助手" in texts(await bot.say("u1", "小王"))[0]


async def test_a_long_answer_is_cut_and_said_so(bot: SandboxClient) -> None:
    await bot.say("u1", "开始调查")
    reply = texts(await bot.say("u1", "名" * 50))[0]
    assert "只保留了前 20 个字" in reply
    assert (await flow_row(bot, "u1", "survey")).data["name"] == "名" * 20


async def test_deadlines_fire_once_across_a_restart(app_factory: Callable[..., Any], clock: FakeClock) -> None:
    async with app_factory() as bot:
        await bot.say("u1", "开始调查")
        await bot.say("u2", "开始调查")
        await bot.say("u2", "小李")  # u2 answered: nothing is due for them
        assert await bot.app[JOBS].fire_deadlines() == 0
    clock.advance(minutes=11)
    async with app_factory() as bot:  # a restart: the deadline lives in the database
        # Whoever fires it first (the job runner at start-up, or this call), it fires once.
        await bot.app[JOBS].fire_deadlines()
        assert await bot.app[JOBS].fire_deadlines() == 0
        sent = [m["text"] for m in await bot.outbox(to="u1")]
        assert sent[-1] == "还在吗？怎么称呼你？" and sent.count("还在吗？怎么称呼你？") == 1
        assert (await flow_row(bot, "u1", "survey")).state == "reminded"
        clock.advance(minutes=61)
        await bot.app[JOBS].fire_deadlines()
        assert [m["text"] for m in await bot.outbox(to="u1")][-1] == "问卷已过期，下次再聊～"
        row = await flow_row(bot, "u1", "survey")
        assert row.state == "expired" and row.finished_at is not None and row.deadline_at is None
        assert (await flow_row(bot, "u2", "survey")).state == "ask_city"


async def test_a_deadline_made_moot_by_an_answer_does_nothing(
    app_factory: Callable[..., Any], clock: FakeClock,
) -> None:
    async with app_factory() as bot:
        await bot.say("u1", "开始调查")
        clock.advance(minutes=11)
        jobs = bot.app[JOBS]
        # The job runner read the due row, but the member answers before it is fed.
        due_before = await jobs.fire_deadlines(limit=0)
        await bot.say("u1", "小王")
        assert due_before == 0 and await jobs.fire_deadlines() == 0
        assert (await flow_row(bot, "u1", "survey")).state == "ask_city"


async def test_twenty_concurrent_messages_never_skip_or_repeat_a_state(bot: SandboxClient) -> None:
    await bot.say("u1", "开始")
    await asyncio.gather(*(bot.say("u1", f"答{i}") for i in range(20)))
    row = await flow_row(bot, "u1", "steps")
    assert row.state == "end"
    assert row.data["seen"] == ["s0", "s1", "s2", "s3", "s4"]  # each step exactly once, in order


async def test_two_flows_of_one_member_stay_independent(bot: SandboxClient) -> None:
    await bot.say("u1", "开始调查")
    await bot.say("u1", "小王")
    # Inside a flow free text is an answer ("开始" would be one): a command starts another flow.
    assert texts(await bot.say("u1", "/steps")) == ["第 0 步"]  # it takes over free text
    assert texts(await bot.say("u1", "北京")) == ["第 1 步"]
    survey_row, steps_row = await flow_row(bot, "u1", "survey"), await flow_row(bot, "u1", "steps")
    assert (survey_row.state, survey_row.active, survey_row.data) == ("ask_city", False, {"name": "小王"})
    assert (steps_row.state, steps_row.active) == ("s1", True)


async def test_a_changed_definition_moves_members_of_a_removed_state(app_factory: Callable[..., Any]) -> None:
    async with app_factory() as bot:
        await bot.say("u1", "开始调查")  # in ask_name
        await bot.say("u2", "开始调查")
        await bot.say("u2", "小李")  # in ask_city, which still exists
    async with app_factory(survey(with_name_state=False), steps(5)) as bot:
        assert texts(await bot.say("u2", "广州")) == ["谢谢 小李！"]  # stayed where they were
        # ask_name is gone: u1 continues from ask_city, the state the definition names.
        assert texts(await bot.say("u1", "北京")) == ["谢谢 {name}！"]
        row = await flow_row(bot, "u1", "survey")
        assert row.state == "done" and row.data["_recovered_from"] == "ask_name"


async def test_operators_can_move_a_member_and_it_is_audited(bot: SandboxClient) -> None:
    await bot.say("u1", "开始调查")
    row = await flow_row(bot, "u1", "survey")

    async with bot.as_operator("op1") as ctx:
        await bot.dispatcher.flows.move(ctx, row.member_id, "survey", "ask_city", reason="已电话确认姓名")
        with pytest.raises(ValueError, match="no state 'nowhere'"):
            await bot.dispatcher.flows.move(ctx, row.member_id, "survey", "nowhere", reason="x")
    assert (await flow_row(bot, "u1", "survey")).state == "ask_city"
    async with bot.db.read() as s:
        entry = (await s.execute(select(AuditEntry).where(AuditEntry.action == "flow.move"))).scalar_one()
    assert entry.actor == "sandbox:op1" and entry.args["from"] == "ask_name" and entry.args["to"] == "ask_city"


def test_a_count_is_read_as_people_write_it() -> None:
    """A KOC's followers come as 5千 or 1.2万 as often as 5000: asked again they would give up."""
    from flows.questions import count

    assert [count(t) for t in ("5000", "5千", "1.2万", "3w", "2k", "５千", "1,000")] == [
        5000, 5000, 12000, 30000, 2000, 5000, 1000]
    assert [count(t) for t in ("abc", "千", "1.25万", "-5", "²", "9" * 40)] == [None] * 6
