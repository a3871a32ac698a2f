"""Every state, kind and key shown to a person is in Chinese: the KOC answers in the review queue,
the member page (flows, applications, ledger, redemptions, profile) and ``/member``."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import koc, points, rewards
from storage.models import Member, Redemption

PASSWORD = "operator-password-1"
KOC_ANSWERS = ["1", "空气炸锅，去年双11", "1", "1 2", "5000", "3", "6"]
ENGLISH = re.compile(r"(?<![A-Za-z_])(koc_screening|redemption|onboarding|submitted|confirm|lapsed|spend|earn|"
                     r"grant|refund|deduct|expire|fulfilled|reserved|approved|pending|rejected|cancelled|bought|activities|"
                     r"platforms|followers|preference|hours|product|active|lost|True|False)(?![A-Za-z_])")


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]},
                         console={"users": [{"name": "ops", "password": PASSWORD}], "secret": "s" * 32},
                         rewards=[{"name": "帆布袋", "cost": 10, "stock": 5}])
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def console_page(bot: SandboxClient, path: str) -> str:
    return await bot.console_page(path, name="ops", password=PASSWORD)


def visible(html: str, table: str) -> str:
    """The text of the element with ``id=table`` (tags dropped)."""
    found = re.search(rf'id="{table}"[^>]*>(.*?)</(table|p)>', html, re.S)
    assert found, table
    return re.sub(r"<[^>]+>", " ", found.group(1))


async def member_with_history(bot: SandboxClient) -> int:
    """u1 applies for KOC (bought), redeems twice (one fulfilled), gets a grant, and leaves a
    third redemption waiting for 确认."""
    await bot.say("u1", "签到", name="小美")
    await bot.say("u1", "申请KOC")
    for answer in KOC_ANSWERS:
        await bot.say("u1", answer)
    async with bot.db.transaction() as s:
        member = (await s.execute(select(Member).where(Member.external_id == "u1"))).scalar_one()
        await points.credit(s, member.id, 50, key="grant:u1", reason="活动奖励", now=bot.dispatcher.clock.now(),
                            issuer="sandbox:op1", kind=points.GRANT)
    for _ in range(2):
        await bot.say("u1", "兑换 1")
        await bot.say("u1", "确认")
    async with bot.db.transaction() as s:
        first = (await s.execute(select(Redemption.id).order_by(Redemption.id))).scalars().first()
        assert first is not None
        await rewards.fulfil(s, first, now=bot.dispatcher.clock.now())
    await bot.say("u1", "兑换 1")  # waits for 确认
    return member.id


async def test_the_koc_queue_names_each_answer_in_chinese(bot: SandboxClient) -> None:
    await member_with_history(bot)
    answers = visible(await console_page(bot, "/console/koc"), "koc-queue")
    assert "是否买过/用过：买过/用过" in answers and "活跃平台：小红书、抖音" in answers and "粉丝数：5000" in answers
    assert not ENGLISH.search(answers), ENGLISH.search(answers)


async def test_the_member_page_shows_no_english_state_or_kind(bot: SandboxClient) -> None:
    member = await member_with_history(bot)
    html = await console_page(bot, f"/console/members/{member}")
    for table in ("member-flows", "member-koc", "ledger", "member-redemptions", "member-profile"):
        shown = visible(html, table)
        assert not ENGLISH.search(shown), (table, ENGLISH.search(shown))
    assert "KOC 申请" in visible(html, "member-flows") and "已提交" in visible(html, "member-flows")
    assert "积分兑换" in visible(html, "member-flows") and "待确认" in visible(html, "member-flows")
    assert "待审核" in visible(html, "member-koc")
    ledger = visible(html, "ledger")
    assert "运营发放" in ledger and "兑换消耗" in ledger and "获得" in ledger
    assert "已发放" in visible(html, "member-redemptions") and "待发放" in visible(html, "member-redemptions")
    assert "买过/用过产品：是" in visible(html, "member-profile")
    assert "状态 <span id=\"member-status\">正常</span>" in html


async def test_the_member_command_speaks_chinese(bot: SandboxClient) -> None:
    await member_with_history(bot)
    card = "\n".join(r["text"] for r in await bot.say("op1", "/member u1"))
    assert "（sandbox:u1，正常）" in card and "资料：买过/用过产品：是" in card
    assert "KOC 申请：已提交" in card and "积分兑换：待确认" in card
    assert not ENGLISH.search(card), ENGLISH.search(card)


async def test_every_stored_state_and_kind_has_a_chinese_label(bot: SandboxClient) -> None:
    texts = bot.dispatcher.texts
    stored = {"ledger_kind": (points.EARN, points.GRANT, points.REFUND, points.SPEND, points.DEDUCT, points.EXPIRE),
              "redemption": (rewards.AWAITING_APPROVAL, rewards.RESERVED, rewards.FULFILLED, rewards.CANCELLED),
              "koc_status": (koc.PENDING, koc.APPROVED, koc.REJECTED),
              "member_status": ("active", "lost"), "group_status": ("active", "dismissed"),
              "koc_answer": ("bought", "product", "activities", "platforms", "followers", "preference", "hours"),
              "profile": ("bought", "koc_type", "level", "city", "age", "source", "consent"),
              "role": ("member", "viewer", "operator", "admin")}
    for prefix, values in stored.items():
        for value in values:
            assert not re.search(r"[a-z]", texts.label(prefix, value)), (prefix, value)
    assert bot.dispatcher.flows is not None
    for flow in bot.dispatcher.flows.flows.values():
        assert not re.search(r"[a-z]", flow.title), flow.name
        for state in flow.states:
            assert not re.search(r"[a-z]", flow.state_label(texts, state)), (flow.name, state)


async def test_the_task_list_says_where_a_task_came_from_in_chinese(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    config = make_config(operators={"admins": ["sandbox:op1"]})
    config = config.model_copy(update={"tasks": SiyuConfig.model_validate(
        {"tasks": [{"name": "晒单", "points": 50}]}).tasks})
    async with sandbox_app(config, clock=clock) as bot:
        listed = "\n".join(r["text"] for r in await bot.say("op1", "/task list"))
        assert "来自 配置文件（[[tasks]]）" in listed and "config" not in listed
