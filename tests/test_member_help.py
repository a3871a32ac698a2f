"""What a member meets first (issue 17, item 9): the wording of refusals and usages is consistent."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app


async def text(bot: SandboxClient, who: str, message: str, chat: str | None = None) -> str:
    return "\n".join(r["text"] for r in await bot.say(who, message, chat=chat))


@pytest.fixture
async def shipped(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    async with sandbox_app(make_config(operators={"admins": ["sandbox:boss"]}), clock=clock) as bot:
        yield bot


async def test_refusals_say_the_lowest_role_that_may_and_help_agrees(shipped: SandboxClient) -> None:
    # Operators and admins may use /koc too: "观察员及以上", not "只有观察员".
    assert await text(shipped, "u1", "/koc pending") == "抱歉，/koc 只有观察员及以上可以使用。"
    assert await text(shipped, "u1", "/help broadcast") == await text(shipped, "u1", "/broadcast") == \
        "抱歉，/broadcast 只有运营及以上可以使用。"
    assert "没有 /nosuch 这个命令" in await text(shipped, "u1", "/help nosuch")


async def test_help_of_a_command_gives_its_real_usage(shipped: SandboxClient) -> None:
    usage = (await text(shipped, "boss", "/help broadcast")).split("用法：\n")[1]
    assert usage.splitlines() == ["/broadcast <all|tag:标签|群ID,群ID> <内容>", "/broadcast status [编号]",
                                  "/broadcast cancel <编号>"]
    assert "需要运营及以上" in await text(shipped, "boss", "/help broadcast")
    # Every command with arguments shows them: no usage is the bare command when its description
    # names forms of it.
    for name, cmd in shipped.dispatcher.commands.items():
        if f"/{cmd.name} " in cmd.description:
            assert cmd.usage, f"/{name}: its usage is in its description line"
