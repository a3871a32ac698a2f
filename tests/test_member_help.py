"""What a member meets first (issue 17, items 2 and 9): the help lists what the features let a
member do (their registered keywords, with descriptions from their own texts), 「帮助」 and
「菜单」 work without a slash, the fallback and the welcome point to it; and the wording of
refusals and usages is consistent."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app

MEMBER_KEYWORDS = ["签到  每天签到领积分", "积分  查看积分余额", "等级  查看你的等级", "排行  查看本周积分排行",
                   "兑换  查看积分商城", "投票  查看正在进行的奖品投票", "打卡  查看可以打卡的任务"]


async def text(bot: SandboxClient, who: str, message: str, chat: str | None = None) -> str:
    return "\n".join(r["text"] for r in await bot.say(who, message, chat=chat))


@pytest.fixture
async def shipped(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    async with sandbox_app(make_config(operators={"admins": ["sandbox:boss"]}), clock=clock) as bot:
        yield bot


async def test_a_members_help_lists_what_they_can_send(shipped: SandboxClient) -> None:
    private = await text(shipped, "u1", "/help")
    for line in [*MEMBER_KEYWORDS, "申请KOC  申请成为品牌 KOC"]:
        assert line in private, line
    assert "/broadcast" not in private  # an operator's command is not a member's
    # In a group only what works there: the KOC application is one-to-one.
    in_group = await text(shipped, "u1", "/help", chat="g1")
    assert all(line in in_group for line in MEMBER_KEYWORDS) and "申请KOC" not in in_group


@pytest.mark.parametrize("word", ["帮助", "菜单"])
async def test_the_menu_words_work_without_a_slash_one_to_one_and_in_groups(shipped: SandboxClient,
                                                                            word: str) -> None:
    for chat in (None, "g1"):
        menu = await text(shipped, "u1", word, chat=chat)
        assert "你可以直接发送这些关键词" in menu and "兑换  查看积分商城" in menu, (chat, menu)
    # An operator asking for the menu gets their commands too (as with /help).
    assert "/broadcast" in await text(shipped, "boss", word)


async def test_only_enabled_features_are_listed_and_their_keywords_as_configured(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    config = make_config(signin={"keyword": "打个卡签到"}, koc={"enabled": False})
    async with sandbox_app(config, clock=clock) as bot:
        menu = await text(bot, "u1", "菜单")
        assert "打个卡签到  每天签到领积分" in menu and "申请KOC" not in menu
    async with sandbox_app(make_config(signin={"enabled": False}), clock=clock) as bot:
        assert "每天签到领积分" not in await text(bot, "u1", "菜单")


async def test_the_fallback_and_the_welcomes_point_to_the_menu(shipped: SandboxClient) -> None:
    fallback = await text(shipped, "u1", "你们最近有什么活动吗")
    assert "有其他问题可以直接留言" in fallback
    assert all(line in fallback for line in MEMBER_KEYWORDS)
    assert "发送「帮助」" in (await shipped.event("member_joined", "u2", chat="g1"))[0]["text"]
    assert "发送「帮助」" in (await shipped.event("contact_added", "u3"))[0]["text"]


async def test_refusals_say_the_lowest_role_that_may_and_help_agrees(shipped: SandboxClient) -> None:
    # Operators and admins may use /koc too: "观察员及以上", not "只有观察员".
    assert await text(shipped, "u1", "/koc pending") == "抱歉，/koc 只有观察员及以上可以使用。"
    assert await text(shipped, "u1", "/help broadcast") == await text(shipped, "u1", "/broadcast") == \
        "抱歉，/broadcast 只有运营及以上可以使用。"
    assert "没有 /nosuch 这个命令" in await text(shipped, "u1", "/help nosuch")


async def test_help_of_a_command_gives_its_real_usage(shipped: SandboxClient) -> None:
    usage = (await text(shipped, "boss", "/help broadcast")).split("用法：\n")[1]
    assert usage.splitlines() == ["/broadcast <all|tag:标签|群ID,群ID> <内容>（另起几行「标题：」「链接：」加卡片）",
                                  "/broadcast status [编号]", "/broadcast cancel <编号>", "/broadcast help"]
    assert "需要运营及以上" in await text(shipped, "boss", "/help broadcast")
    # Every command with arguments shows them: no usage is the bare command when its description
    # names forms of it.
    for name, cmd in shipped.dispatcher.commands.items():
        if f"/{cmd.name} " in cmd.description:
            assert cmd.usage, f"/{name}: its usage is in its description line"
