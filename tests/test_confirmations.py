"""Confirmations never trap a member (issue 17, item 3): a redemption certain to fail is refused
before 「确认」 is asked; while a confirmation waits, another command (a keyword a feature
registered, or a slash-command) leaves it, saying so, and is handled; 「兑换 N」 replaces the
choice. The rule is the confirm flow's, for every confirmation (the broadcast one too), and
what counts as a command comes from the features' registrations."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import filters
from bot.builtin import FEATURES, SiyuConfig
from bot.config import Config
from bot.context import Context
from bot.feature import Feature
from bot.router import Keyword, Router
from bot.testing import FakeClock, SandboxClient, sandbox_app
from flows.confirm import confirmation
from flows.engine import Conversation
from storage import points
from storage.models import Broadcast, Member, Redemption, Reward

CONFIRM_ASKED = "回复「确认」兑换"


@pytest.fixture
async def shop(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]}, tasks=[{"name": "晒单", "points": 20}])
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate({"rewards": [
        {"name": "贴纸", "cost": 50, "stock": 10},
        {"name": "帆布袋", "cost": 100, "stock": 5},
        {"name": "保温杯", "cost": 300, "stock": 5},
        {"name": "徽章", "cost": 10, "stock": 5, "per_member_limit": 1},
        {"name": "礼盒", "cost": 10, "stock": 5, "min_level": "钻石"},
        {"name": "绝版", "cost": 10, "stock": 0},
        {"name": "5 元券", "cost": 10, "stock": 1, "codes": ["C-1"]},
    ]}).rewards})
    async with sandbox_app(config, clock=clock) as bot:
        yield bot


async def give(bot: SandboxClient, who: str, amount: int) -> int:
    await bot.say(who, "你好")
    async with bot.db.transaction() as s:
        m = (await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one()
        await points.credit(s, m, amount, key=f"give:{who}", reason="测试", now=bot.dispatcher.clock.now())
    return m


async def ids(bot: SandboxClient) -> dict[str, int]:
    async with bot.db.read() as s:
        return {r.name: r.id for r in (await s.execute(select(Reward))).scalars()}


async def say(bot: SandboxClient, who: str, text: str) -> list[str]:
    return [r["text"] for r in await bot.say(who, text) if r.get("to") == who]


async def redemptions(bot: SandboxClient) -> list[str]:
    async with bot.db.read() as s:
        rows = (await s.execute(select(Reward.name).join(Redemption, Redemption.reward_id == Reward.id)
                                .order_by(Redemption.id))).scalars()
        return list(rows)


async def test_a_pick_certain_to_fail_is_refused_before_confirm_is_asked(shop: SandboxClient) -> None:
    await give(shop, "u1", 200)
    r = await ids(shop)
    await say(shop, "u1", f"兑换 {r['徽章']}")
    assert "兑换成功" in (await say(shop, "u1", "确认"))[0]
    # Another unit of a limit-1 reward, a level too low, not enough points, no stock, an empty code pool.
    async with shop.db.transaction() as s:  # an operator added stock beyond the code pool
        await s.execute(Reward.__table__.update().where(Reward.id == r["5 元券"]).values(stock=2))
    await give(shop, "u3", 10)
    await say(shop, "u3", f"兑换 {r['5 元券']}")
    await say(shop, "u3", "确认")  # the only code
    expected = {
        "徽章": "「徽章」每人最多兑换 1 件，你已经兑换过啦。",
        "礼盒": "「礼盒」需要「钻石」及以上等级才能兑换",
        "保温杯": "积分不够哦：「保温杯」需要 300 积分，你现在有 190 积分。",
        "绝版": "「绝版」已经兑完了～",
        "5 元券": "「5 元券」已经兑完了～",
    }
    for name, answer in expected.items():
        [said] = await say(shop, "u1", f"兑换 {r[name]}")
        assert answer in said and CONFIRM_ASKED not in said, (name, said)
        # Nothing waits for 确认: it is an ordinary message again (the fallback answers).
        assert "有其他问题可以直接留言" in (await say(shop, "u1", "确认"))[0]
    assert await redemptions(shop) == ["徽章", "5 元券"]


async def test_another_command_leaves_a_waiting_confirmation_and_is_handled(shop: SandboxClient) -> None:
    await give(shop, "u1", 200)
    r = await ids(shop)
    assert CONFIRM_ASKED in (await say(shop, "u1", f"兑换 {r['贴纸']}"))[0]
    left, balance = await say(shop, "u1", "积分")
    assert left == "「贴纸」的兑换没有确认，已取消。" and balance.startswith("你现在有 200 积分")
    assert CONFIRM_ASKED in (await say(shop, "u1", f"兑换 {r['贴纸']}"))[0]
    left, menu = await say(shop, "u1", "打卡")
    assert "已取消" in left and "晒单" in menu
    assert CONFIRM_ASKED in (await say(shop, "u1", f"兑换 {r['贴纸']}"))[0]
    left, help_ = await say(shop, "u1", "/help")  # a slash-command too
    assert "已取消" in left and "兑换  查看积分商城" in help_
    assert CONFIRM_ASKED in (await say(shop, "u1", f"兑换 {r['贴纸']}"))[0]
    left, unknown = await say(shop, "u1", "兑换 99")
    assert "已取消" in left and "没有编号 99 的奖品" in unknown
    assert "有其他问题可以直接留言" in (await say(shop, "u1", "确认"))[0]  # nothing waits any more
    assert await redemptions(shop) == []


async def test_picking_another_reward_replaces_the_choice(shop: SandboxClient) -> None:
    m = await give(shop, "u1", 200)
    r = await ids(shop)
    await say(shop, "u1", f"兑换 {r['贴纸']}")
    left, asked = await say(shop, "u1", f"兑换 {r['帆布袋']}")
    assert left == "「贴纸」的兑换没有确认，已取消。" and asked.startswith("兑换「帆布袋」需要 100 积分")
    # What is not a command is still not an answer: asked again, the choice kept.
    [again] = await say(shop, "u1", "好的")
    assert again.startswith("没太明白你的回答") and "兑换「帆布袋」" in again
    assert "兑换成功！「帆布袋」" in (await say(shop, "u1", "确认"))[0]
    assert await redemptions(shop) == ["帆布袋"]
    async with shop.db.read() as s:
        assert await points.balance(s, m) == 100


async def test_an_unknown_command_does_not_leave_the_confirmation(shop: SandboxClient) -> None:
    await give(shop, "u1", 200)
    r = await ids(shop)
    await say(shop, "u1", f"兑换 {r['贴纸']}")
    [answer] = await say(shop, "u1", "/nosuch")
    assert "没有 /nosuch 这个命令" in answer and "兑换「贴纸」" in answer  # reminded of the question
    assert "兑换成功" in (await say(shop, "u1", "确认"))[0]


async def test_the_broadcast_confirmation_steps_aside_the_same_way(shop: SandboxClient) -> None:
    await shop.event("member_joined", "m1", chat="g1")
    assert "回复「确认」开始群发" in "\n".join(await say(shop, "op1", "/broadcast all 第一条"))
    left, status = await say(shop, "op1", "/broadcast status 1")
    assert left == "群发 #1 没有确认，没有发送。" and "群发 #1（待确认）" in status
    assert "有其他问题可以直接留言" in (await say(shop, "op1", "确认"))[0]
    await say(shop, "op1", "/broadcast all 第二条")
    left, points_ = await say(shop, "op1", "积分")
    assert left == "群发 #2 没有确认，没有发送。" and "积分" in points_
    await say(shop, "op1", "/broadcast all 第三条")
    left, preview = await say(shop, "op1", "/broadcast all 第四条")  # a new one replaces it
    assert "#3 没有确认" in left and "群发 #4 将发到 1 个群" in preview
    assert "群发 #4 已开始" in (await say(shop, "op1", "确认"))[0]
    async with shop.db.read() as s:
        started = (await s.execute(select(Broadcast.id).where(Broadcast.status != "preview"))).scalars()
        assert list(started) == [4]


def confirming_feature() -> Feature:
    """A brand's own feature: 「抽奖」 asks to confirm; 「签名」 is its keyword, 「闲聊」 a route
    registered without one."""
    router = Router("brand")

    @router.message(filters.Text("抽奖"), keyword=Keyword("抽奖", "brand_draw_about"))
    async def draw(ctx: Context) -> None:
        await ctx.flows.start(ctx, "brand_draw", {"prize": "好运"})

    @router.message(filters.Text("签名"), keyword=Keyword("签名", "brand_sign_about"))
    async def sign(ctx: Context) -> None:
        ctx.reply("已签名")

    @router.message(filters.Text("闲聊"))
    async def chat(ctx: Context) -> None:
        ctx.reply("聊聊")

    async def drawn(conversation: Conversation) -> str:
        return "抽中了" + conversation.data["prize"]

    flow = confirmation("brand_draw", title="抽奖", prompt="回复「确认」抽{prize}", lapsed="超时", on_confirm=drawn)
    return Feature("brand", routers=lambda config: [router], flows=lambda config: [flow])


async def test_what_counts_as_a_command_comes_from_the_features_registrations(
    make_config: Callable[..., Config], clock: FakeClock, tmp_path: Path,
) -> None:
    texts = tmp_path / "texts.toml"
    texts.write_text('brand_draw_about = "抽一次奖"\nbrand_sign_about = "签个名"\n', encoding="utf-8")
    brand = confirming_feature()
    brand = Feature(brand.name, texts=texts, routers=brand.routers, flows=brand.flows)
    async with sandbox_app(make_config(features=(*FEATURES, brand)), clock=clock) as bot:
        await say(bot, "u1", "抽奖")
        left, signed = await say(bot, "u1", "签名")  # the brand's keyword: a command
        assert left == "已离开「抽奖」（没有确认）。" and signed == "已签名"
        await say(bot, "u1", "抽奖")
        [again] = await say(bot, "u1", "闲聊")  # a route without a Keyword is not "clearly a command"
        assert again.startswith("没太明白你的回答") and "回复「确认」抽好运" in again
        assert await say(bot, "u1", "确认") == ["抽中了好运"]
        assert "签名  签个名" in (await say(bot, "u1", "菜单"))[0]
