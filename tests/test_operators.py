"""Operators' commands through the sandbox: each one's happy path, its refusal for a role too
low, usage on wrong arguments, and the audit trail of all of it."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import koc, points
from storage.models import AuditEntry, Member


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:boss"]})
    config = config.model_copy(update={"sop": SiyuConfig.model_validate(
        {"sop": [{"name": "早安", "text": "早安", "cron": "0 9 * * *"}]}).sop})
    async with sandbox_app(config, clock=clock) as client:
        for who, name in (("u1", "小王"), ("u2", "小李"), ("op", "运营小张"), ("viewer", "老板")):
            await client.say(who, "你好", name=name)
        yield client


async def cmd(bot: SandboxClient, who: str, text: str) -> str:
    """The answer to ``who`` (a member may be told something as well)."""
    return "\n".join(r["text"] for r in await bot.say(who, text) if r.get("to") == who)


async def audited(bot: SandboxClient) -> list[tuple[str, str, str]]:
    async with bot.db.read() as s:
        return [(e.actor, e.action, e.result)
                for e in (await s.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars()]


async def member_id(bot: SandboxClient, who: str) -> int:
    async with bot.db.read() as s:
        return (await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one()


async def test_roles_are_granted_and_revoked_with_immediate_effect(bot: SandboxClient) -> None:
    assert "只有观察员及以上可以使用" in await cmd(bot, "op", "/member u1")
    assert "抱歉，/role 只有" in await cmd(bot, "op", "/role grant op admin")  # nobody raises their own role
    assert "已授予 运营小张「运营」角色" in await cmd(bot, "boss", "/role grant op operator")
    assert "用户 #" in await cmd(bot, "op", "/member u1")  # at once
    assert "只有管理员可以使用" in await cmd(bot, "op", "/role grant u1 admin")
    assert "不能修改自己的角色" in await cmd(bot, "boss", "/role revoke boss")
    listing = await cmd(bot, "boss", "/role list")
    assert "boss（sandbox）：管理员，由 配置文件（[operators] admins） 授予" in listing
    assert "op（sandbox）：运营" in listing
    assert "已撤销 运营小张 的 1 个角色" in await cmd(bot, "boss", "/role revoke op")
    assert "只有运营及以上可以使用" in await cmd(bot, "op", "/points grant u1 10 测试")
    trail = await audited(bot)
    assert ("sandbox:op", "/member", "refused") in trail and ("sandbox:boss", "/role", "ok") in trail
    assert ("sandbox:op", "/points", "refused") in trail


async def test_an_admin_is_an_admin_on_their_own_channel_only(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    """The same id on another channel is somebody else: a sandbox or bridge user who takes an
    admin's WeCom id gets no role (DESIGN §11)."""
    async with sandbox_app(make_config(operators={"admins": ["wecom:boss"]}), clock=clock) as bot:
        await bot.say("u1", "签到", chat="g1")
        assert "只有运营及以上可以使用" in await cmd(bot, "boss", "/points grant u1 1000000 我是管理员")
        assert "抱歉，/role 只有" in await cmd(bot, "boss", "/role grant boss admin")
        async with bot.db.read() as s:
            results = (await s.execute(select(AuditEntry.result).where(AuditEntry.actor == "sandbox:boss"))).scalars()
            assert results.all() == ["refused", "refused"]


async def test_nobody_grants_themselves_points(bot: SandboxClient) -> None:
    await bot.say("boss", "签到", chat="g1")
    assert "不能给自己加减积分" in await cmd(bot, "boss", "/points grant boss 1000000 辛苦费")
    assert "不能给自己加减积分" in await cmd(bot, "boss", "/points deduct boss 1 测试")
    async with bot.db.read() as s:
        assert await points.balance(s, await member_id(bot, "boss")) == 10  # the sign-in only


async def test_points_grant_and_deduct_are_ledger_entries_by_the_operator(bot: SandboxClient) -> None:
    replies = await bot.say("boss", '/points grant 小王 100 "活动 奖励"')
    assert [r["text"] for r in replies if r["to"] == "u1"] == ["你获得了 100 积分（活动 奖励），当前积分 100。"]
    assert "已扣除 小王 30 积分，当前积分 70" in await cmd(bot, "boss", "/points deduct u1 30 补扣")
    assert "只有 70 积分" in await cmd(bot, "boss", "/points deduct u1 500 多扣")
    assert "数量要是 1 到 1000000 之间的整数" in await cmd(bot, "boss", "/points grant u1 -5 x")
    assert "没有找到用户「nobody」" in await cmd(bot, "boss", "/points grant nobody 5 x")
    assert "缺少原因\n用法：\n/points grant" in await cmd(bot, "boss", "/points grant u1 5")
    async with bot.db.read() as s:
        m = await member_id(bot, "u1")
        assert await points.check(s, m) == (70, 70, 70)
        issuers = (await s.execute(select(points.E.c.issuer, points.E.c.kind).where(points.E.c.member_id == m))).all()
    assert issuers == [("sandbox:boss", "grant"), ("sandbox:boss", "deduct")]


async def test_member_card_tags_and_flows(bot: SandboxClient) -> None:
    assert "小王 的标签：VIP、上海" in await cmd(bot, "boss", "/tag add u1 VIP 上海")
    assert "小王 的标签：上海" in await cmd(bot, "boss", "/tag remove u1 VIP")
    card = await cmd(bot, "boss", "/member 小王")
    assert "标签：上海" in card and "积分：0" in card and "等级：青铜" in card and "分层：泛用户" in card
    assert "已把 小王 的流程「KOC 申请」设为「进行中」" in await cmd(bot, "boss", "/flow reset u1 koc_screening")
    assert "流程：KOC 申请：进行中" in await cmd(bot, "boss", f"/member #{await member_id(bot, 'u1')}")
    assert "已把 小王 的流程「KOC 申请」" in await cmd(bot, "boss", '/flow reset u1 "KOC 申请"')  # as the bot names it
    refused = await cmd(bot, "boss", "/flow reset u1 nope")
    assert "流程要是" in refused and "KOC 申请" in refused and "koc_screening" not in refused


async def test_a_flow_the_member_left_reads_left_on_the_card(bot: SandboxClient) -> None:
    await bot.say("u1", "申请KOC")
    assert "流程：KOC 申请：进行中" in await cmd(bot, "boss", "/member u1")
    await bot.say("u1", "退出")
    card = await cmd(bot, "boss", "/member u1")
    assert "流程：KOC 申请：已退出" in card and "进行中" not in card


async def test_a_member_is_found_by_the_identity_the_bot_writes(bot: SandboxClient) -> None:
    """/member writes 「sandbox:u1」 and admins are configured so: operators may type it back."""
    assert "sandbox:u1" in await cmd(bot, "boss", "/member u1")
    assert "积分" in await cmd(bot, "boss", "/member sandbox:u1")
    assert "没有找到用户「wecom:u1」" in await cmd(bot, "boss", "/member wecom:u1")  # another channel's u1


async def test_roles_are_typed_and_shown_in_the_operators_words(bot: SandboxClient) -> None:
    assert "运营" in await cmd(bot, "boss", "/role grant u2 运营")
    listed = await cmd(bot, "boss", "/role list")
    assert "运营" in listed and "由 配置文件（[operators] admins） 授予" in listed and "config" not in listed
    refused = await cmd(bot, "boss", "/role grant u2 老板")
    assert "角色要是 观察员 / 运营 / 管理员 之一" in refused and "operator" not in refused


async def test_koc_review_from_chat(bot: SandboxClient, clock: FakeClock) -> None:
    async with bot.db.transaction() as s:
        await koc.submit(s, await member_id(bot, "u1"), score=70, recommended_type="分享官", answers={},
                         now=clock.now())
    assert "小王（u1）70 分，推荐分享官" in await cmd(bot, "boss", "/koc pending")
    assert "类型要是" in await cmd(bot, "boss", "/koc approve u1 大使")
    replies = await bot.say("boss", "/koc approve u1 内容官")
    assert "小王 的 KOC 申请：已通过（内容官）" in [r["text"] for r in replies if r["to"] == "boss"][0]
    assert any(r["to"] == "u1" for r in replies)  # the member is told
    assert "没有待审核的 KOC 申请" in await cmd(bot, "boss", "/koc reject u1 重复")
    assert "已邀请 小李 参加 KOC 筛选" in await cmd(bot, "boss", "/koc invite u2")
    assert "KOC:内容官" in await cmd(bot, "boss", "/member u1")


async def test_rewards_sop_stats_audit_and_help(bot: SandboxClient) -> None:
    added = await cmd(bot, "boss", '/reward add "品牌 帆布袋" 200 30 limit=1 level=白银')
    assert "已上架奖品" in added and "「品牌 帆布袋」：200 积分，库存 30" in added
    reward_id = added.split("已上架奖品 ")[1].split(".")[0]
    assert "库存 50" in await cmd(bot, "boss", f"/reward stock {reward_id} +20")
    assert "库存只剩 50，不能减 60" in await cmd(bot, "boss", f"/reward stock {reward_id} -60")
    assert "已下架" in await cmd(bot, "boss", f"/reward disable {reward_id}")
    assert "品牌 帆布袋" not in (await bot.say("u1", "兑换"))[0]["text"]
    assert "「早安」0 9 * * *：运行中" in await cmd(bot, "boss", "/sop list")
    assert "已暂停定时话题「早安」" in await cmd(bot, "boss", "/sop pause 早安")
    assert "「早安」0 9 * * *：已暂停" in await cmd(bot, "boss", "/sop list")
    stats = await cmd(bot, "boss", "/stats")
    assert "【今天】新增成员：无渠道码 5" in stats and "待审核 KOC：0 人" in stats
    assert "/points grant <用户> <数量> <原因>" in await cmd(bot, "boss", "/help points")
    # To a member, /help says what running it says: it needs a role (not "there is no such command").
    assert await cmd(bot, "u1", "/help points") == await cmd(bot, "u1", "/points") == \
        "抱歉，/points 只有运营及以上可以使用。"
    assert "你是不是想输入 /stats" in await cmd(bot, "boss", "/stat")
    trail = await cmd(bot, "boss", "/audit 5")
    assert len(trail.splitlines()) == 5 and "/stats → 成功" in trail and "→ ok" not in trail
    assert "引号不成对" in await cmd(bot, "boss", '/reward add "坏 200 1')
