"""Onboarding and KOC screening, as members and operators live them through the sandbox."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.appkeys import JOBS
from bot.config import Config
from bot.context import Context
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.update import Update
from handlers.koc import screening
from handlers.koc import services as koc_screening
from handlers.koc.config import KocRubric
from storage import koc
from storage.models import AuditEntry, KocApplication, Member, MemberFlow, MemberTag


def texts(replies: list[dict[str, Any]]) -> list[str]:
    return [r["text"] for r in replies]


async def member(bot: SandboxClient, external_id: str) -> Member:
    async with bot.db.read() as s:
        return (await s.execute(select(Member).where(Member.external_id == external_id))).scalar_one()


async def tags_of(bot: SandboxClient, external_id: str) -> set[str]:
    m = await member(bot, external_id)
    async with bot.db.read() as s:
        return set((await s.execute(select(MemberTag.tag).where(MemberTag.member_id == m.id))).scalars())


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    async with sandbox_app(make_config(operators={"admins": ["sandbox:op1"]}), clock=clock) as client:
        yield client


# -- onboarding ------------------------------------------------------------------------------------

async def test_onboarding_from_a_new_contact_to_a_profile(bot: SandboxClient) -> None:
    first = texts(await bot.event("contact_added", "c1", name="阿花", state="poster"))
    assert len(first) == 2 and "阿花" in first[0]  # the welcome, then the first question
    assert "4 个小问题" in first[1] and "你在哪个城市？" in first[1] and "2 上海" in first[1]
    assert "没太明白" in texts(await bot.say("c1", "火星"))[0]  # outside the choices: asked again
    assert texts(await bot.say("c1", "2")) == ["方便说下你的年龄吗？（回复数字）"]
    assert "没太明白" in texts(await bot.say("c1", "二十八"))[0]
    assert "没太明白" in texts(await bot.say("c1", "121"))[0]  # out of range
    assert texts(await bot.say("c1", "28")) == ["你是从哪里知道我们的？"]
    assert "可以发消息通知你吗" in texts(await bot.say("c1", "朋友推荐"))[0]
    assert "谢谢你，阿花" in texts(await bot.say("c1", "1"))[0]
    profile = await member(bot, "c1")
    assert profile.attributes == {"city": "上海", "age": 28, "source": "朋友推荐", "consent": True}
    assert await tags_of(bot, "c1") == {"上海", "同意接收通知"}
    # Done: the member talks to the bot normally, and is not asked again on a new add.
    assert "品牌助手" in texts(await bot.say("c1", "你好"))[0]
    assert len(await bot.event("contact_added", "c1")) == 1


async def test_onboarding_reminds_once_then_closes(bot: SandboxClient, clock: FakeClock) -> None:
    await bot.event("contact_added", "c2", name="小李")
    jobs = bot.app[JOBS]
    clock.advance(hours=23)
    assert await jobs.fire_deadlines() == 0
    clock.advance(hours=2)
    assert await jobs.fire_deadlines() == 1
    reminder = (await bot.outbox(to="c2"))[-1]["text"]
    assert reminder.startswith("小李，还差几个小问题") and "你在哪个城市？" in reminder
    assert await jobs.fire_deadlines() == 0  # reminded once
    clock.advance(hours=24)
    assert await jobs.fire_deadlines() == 1
    assert (await bot.outbox(to="c2"))[-1]["text"].startswith("没关系")
    async with bot.db.read() as s:
        row = (await s.execute(select(MemberFlow).where(MemberFlow.flow == "onboarding"))).scalar_one()
    assert row.state == "closed" and row.finished_at is not None and not row.active


async def test_onboarding_can_start_on_the_first_message(make_config: Callable[..., Config], clock: FakeClock) -> None:
    config = make_config(onboarding={"start_on": ["first_message"],
                                     "questions": [{"key": "pet", "text": "养宠物吗？", "kind": "choice",
                                                    "choices": ["猫", "狗", "没有"]}]})
    async with sandbox_app(config, clock=clock) as bot:
        first = texts(await bot.say("u1", "你好", name="小王"))
        assert len(first) == 1 and "养宠物吗？" in first[0] and "2 个小问题" in first[0]
        await bot.say("u1", "猫")
        await bot.say("u1", "2")
        assert (await member(bot, "u1")).attributes == {"pet": "猫", "consent": False}
        # Later messages are ordinary messages.
        assert "品牌助手" in texts(await bot.say("u1", "在吗"))[0]


# -- KOC screening ----------------------------------------------------------------------------------

async def screen(bot: SandboxClient, who: str, answers: list[str]) -> list[str]:
    out: list[str] = []
    for text in answers:
        out += texts(await bot.say(who, text))
    return out


async def test_koc_screening_scores_recommends_and_waits_for_review(bot: SandboxClient) -> None:
    first = texts(await bot.say("k1", "申请KOC", name="达人"))
    assert "你购买或使用过我们的产品吗？" in first[0]
    replies = await screen(bot, "k1", ["1", "空气炸锅，去年双11", "1", "1 2", "5000", "3", "6"])
    assert "初评是「体验官」" in replies[-1]
    async with bot.db.read() as s:
        application = (await s.execute(select(KocApplication))).scalar_one()
    # 25 bought + 20 often + 10 two platforms + 10 followers >= 1000 + 10 six hours.
    assert (application.score, application.recommended_type, application.status) == (75, "体验官", "pending")
    assert (application.answers["product"] == "空气炸锅，去年双11"
            and application.answers["platforms"] == ["小红书", "抖音"])
    # Applying again while it waits: told so, no second application.
    assert texts(await bot.say("k1", "申请KOC")) == ["你的 KOC 申请正在审核中，请耐心等待～"]


async def test_no_product_skips_questions_and_a_tester_needs_the_product(bot: SandboxClient) -> None:
    await bot.say("k2", "申请KOC")
    replies = await screen(bot, "k2", ["2", "3", "6", "3", "1"])  # no product, never joined, no platform
    assert "初评是「分享官」" in replies[-1]  # wanted to test products, but has none
    async with bot.db.read() as s:
        application = (await s.execute(select(KocApplication))).scalar_one()
    assert application.score == 0 and "followers" not in application.answers and "product" not in application.answers


async def test_nonsense_answers_never_move_the_screening(bot: SandboxClient) -> None:
    await bot.say("k3", "申请KOC")
    for nonsense in ("5", "maybe", "1 6", "", "很多"):
        if nonsense:
            assert "没太明白" in texts(await bot.say("k3", nonsense))[0]
    async with bot.db.read() as s:
        assert (await s.execute(select(MemberFlow.state))).scalar_one() == "bought"


async def test_an_operator_approves_and_the_member_is_told_and_tagged(bot: SandboxClient) -> None:
    await bot.say("k4", "申请KOC")
    await screen(bot, "k4", ["1", "净水器", "2", "1", "300", "1", "3"])
    async with bot.as_operator("op1") as ctx:
        [application] = await koc.pending(ctx.session)
        decided = await koc_screening.decide(ctx, application.id, approve=True)
        assert decided is not None and decided.approved_type == "分享官"
        assert await koc_screening.decide(ctx, application.id, approve=False, reason="重复") is None  # decided already
    assert (await bot.outbox(to="k4"))[-1]["text"].startswith("恭喜！你已通过审核，成为品牌「分享官」")
    assert "KOC:分享官" in await tags_of(bot, "k4")
    assert (await member(bot, "k4")).attributes["koc_type"] == "分享官"
    async with bot.db.read() as s:
        actions = [(a.action, a.result)
                   for a in (await s.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars()]
    assert actions == [("koc.approve", "ok"), ("koc.reject", "refused")]


async def test_an_abandoned_screening_is_reminded_then_expires(bot: SandboxClient, clock: FakeClock) -> None:
    await bot.say("k5", "申请KOC")
    await bot.say("k5", "1")
    clock.advance(hours=25)
    await bot.app[JOBS].fire_deadlines()
    assert (await bot.outbox(to="k5"))[-1]["text"].startswith("你的 KOC 申请还没填完哦")
    clock.advance(days=2)
    await bot.app[JOBS].fire_deadlines()
    assert ("KOC 申请已过期" in (await bot.outbox(to="k5"))[-1]["text"]
            and "申请KOC" in (await bot.outbox(to="k5"))[-1]["text"])
    # Expired: applying again starts afresh.
    assert "你购买或使用过我们的产品吗？" in texts(await bot.say("k5", "申请KOC"))[0]


async def test_active_members_are_invited_once(make_config: Callable[..., Config], clock: FakeClock) -> None:
    async with sandbox_app(make_config(koc={"activity_threshold": 3}), clock=clock) as bot:
        assert await bot.say("a1", "早", chat="g1") == []
        assert await bot.say("a1", "哈哈", chat="g1") == []
        third = await bot.say("a1", "今天活动几点？", chat="g1")
        assert len(third) == 1 and third[0]["to"] == "a1" and "你购买或使用过我们的产品吗？" in third[0]["text"]
        assert await bot.say("a1", "好的", chat="g1") == []  # invited once


def test_score_is_capped_and_follows_the_rubric() -> None:
    rubric = KocRubric(bought=60, activities_often=60)
    total, role = screening.score({"bought": "买过/用过", "activities": "经常参加",
                                   "preference": "推荐好物带货"}, rubric)
    assert (total, role) == (100, "带货官")
    assert screening.score({}, KocRubric()) == (0, "分享官")
    assert screening.score({"platforms": ["小红书"] * 9}, KocRubric())[0] == 15  # platforms_max


async def test_an_unknown_command_inside_a_flow_repeats_the_question(bot: SandboxClient) -> None:
    await bot.say("k6", "申请KOC")
    reply = texts(await bot.say("k6", "/whatever"))[0]
    assert "没有 /whatever 这个命令" in reply and "你购买或使用过我们的产品吗？" in reply


async def test_an_operator_invites_a_member(bot: SandboxClient) -> None:
    await bot.say("k7", "在吗")  # the member exists
    async with bot.as_operator("op1") as ctx:
        target = (await ctx.session.execute(select(Member).where(Member.external_id == "k7"))).scalar_one()
        assert await koc_screening.invite(ctx, target)
    assert "你购买或使用过我们的产品吗？" in (await bot.outbox(to="k7"))[-1]["text"]
    assert texts(await bot.say("k7", "1")) == ["是哪款产品？大概什么时候买的？"]  # the flow is the member's
    async with bot.db.read() as s:
        assert (await s.execute(select(AuditEntry.action))).scalars().all() == ["koc.invite"]


async def test_a_flow_started_earlier_in_the_same_batch_takes_the_members_answer(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    """Active flows are read once per batch; one an operator started for the member in that
    very batch must still take the member's next text (the batch re-reads it)."""
    from bot.builtin import FEATURES
    from bot.feature import Feature
    from bot.router import Router

    inviter = Router("inviter")

    @inviter.command("invite", role="admin")
    async def invite(ctx: Context) -> None:
        """邀请申请"""
        target = (await ctx.session.execute(select(Member).where(Member.external_id == ctx.args))).scalar_one()
        await koc_screening.invite(ctx, target)

    config = make_config(operators={"admins": ["sandbox:op1"]},
                         features=(Feature("inviter", routers=lambda config: [inviter]), *FEATURES))
    async with sandbox_app(config, clock=clock) as bot:
        await bot.say("k9", "你好")
        now = clock.now()
        results = await bot.dispatcher._process([  # one batch, as group commit would form it
            Update(channel="sandbox", key="b1", sender="op1", at=now, text="/invite k9"),
            Update(channel="sandbox", key="b2", sender="k9", at=now, text="1"),
        ])
    assert [r.text for r in results[1].replies] == ["是哪款产品？大概什么时候买的？"]
