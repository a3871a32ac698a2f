"""Routing order (DESIGN §4): slash-command → active flow (1:1) → routes → fallback; roles; failures."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot import filters
from bot.builtin import FEATURES
from bot.context import Context
from bot.feature import Feature
from bot.router import Router
from bot.testing import SandboxClient, sandbox_app
from flows.runner import FlowEngine
from storage.models import AuditEntry, InboundUpdate, OutboxMessage


class KeywordFlow(FlowEngine):
    """A flow engine whose members in ``active`` are inside a flow that takes any 1:1 text."""

    def __init__(self) -> None:
        super().__init__([])
        self.active: set[str] = set()

    async def handle(self, ctx: Context) -> bool:
        if ctx.update.sender not in self.active:
            return False
        ctx.reply(f"flow:{ctx.update.text}")
        return True


def make_router() -> Router:
    router = Router("test")

    @router.command("ping")
    async def ping(ctx: Context) -> None:
        """测试连通"""
        ctx.reply(f"pong {ctx.args}".strip())

    @router.command("secret", role="admin")
    async def secret(ctx: Context) -> None:
        """只给管理员的命令"""
        ctx.reply("secret done")

    @router.message(filters.Text("签到"))
    async def keyword(ctx: Context) -> None:
        ctx.reply("keyword")

    @router.message(filters.Text("boom"))
    async def boom(ctx: Context) -> None:
        ctx.reply("this reply must not survive the failure")
        raise RuntimeError("handler bug")

    return router


@pytest.fixture
async def routed(make_config, clock) -> AsyncIterator[tuple[SandboxClient, KeywordFlow]]:  # type: ignore[no-untyped-def]
    flow = KeywordFlow()
    test_feature = Feature("test", routers=lambda config: [make_router()])
    config = make_config(operators={"admins": ["sandbox:op1"]}, features=(test_feature, *FEATURES))
    async with sandbox_app(config, clock=clock) as bot:
        bot.dispatcher.flows = flow
        yield bot, flow


async def test_routing_order(routed: tuple[SandboxClient, KeywordFlow]) -> None:
    bot, flow = routed
    flow.active.add("u1")
    assert [r["text"] for r in await bot.say("u1", "/ping 1")] == ["pong 1"]  # command beats the flow
    assert [r["text"] for r in await bot.say("u1", "签到")] == ["flow:签到"]  # flow beats keywords
    assert [r["text"] for r in await bot.say("u1", "签到", chat="g1")] == ["keyword"]  # flows are 1:1 only
    assert [r["text"] for r in await bot.say("u2", "签到")] == ["keyword"]  # no flow: keyword
    fallback = await bot.say("u2", "随便聊聊")
    assert len(fallback) == 1 and "/ping" in fallback[0]["text"]  # nothing matched: fallback
    flow.active.clear()
    assert [r["text"] for r in await bot.say("u1", "签到")] == ["keyword"]


async def test_commands_check_roles_and_are_audited(routed: tuple[SandboxClient, KeywordFlow]) -> None:
    bot, _ = routed
    refused = await bot.say("u1", "/secret")
    assert "管理员" in refused[0]["text"] and "secret done" not in refused[0]["text"]
    assert [r["text"] for r in await bot.say("op1", "/secret now")] == ["secret done"]
    async with bot.db.read() as s:
        rows = (await s.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all()
    assert [(r.actor, r.action, r.result) for r in rows] == [
        ("sandbox:u1", "/secret", "refused"), ("sandbox:op1", "/secret", "ok"),
    ]
    assert rows[1].args["args"] == "now"


async def test_help_lists_only_commands_the_sender_may_use(routed: tuple[SandboxClient, KeywordFlow]) -> None:
    bot, _ = routed
    member_help = (await bot.say("u1", "/help"))[0]["text"]
    admin_help = (await bot.say("op1", "/help"))[0]["text"]
    assert "/ping" in member_help and "/secret" not in member_help
    assert "/ping" in admin_help and "/secret" in admin_help and "只给管理员的命令" in admin_help


async def test_commands_are_case_insensitive_and_chinese_aliases_work(
    routed: tuple[SandboxClient, KeywordFlow],
) -> None:
    bot, _ = routed
    assert (await bot.say("u1", "/PING"))[0]["text"] == "pong"
    assert "/help" in (await bot.say("u1", "/帮助"))[0]["text"]


async def test_a_failing_handler_rolls_back_and_the_member_gets_an_apology(
    routed: tuple[SandboxClient, KeywordFlow],
) -> None:
    bot, _ = routed
    # Concurrent updates of other members share the batch on SQLite: they must not suffer.
    results = await asyncio.gather(
        bot.say("u1", "boom", id="bad-1"), *(bot.say(f"ok{i}", "签到") for i in range(5)),
    )
    bad, goods = results[0], results[1:]
    assert len(bad) == 1 and "出了点问题" in bad[0]["text"]
    assert all([r["text"] for r in good] == ["keyword"] for good in goods)
    async with bot.db.read() as s:
        texts = (await s.execute(select(OutboxMessage.text))).scalars().all()
        failed = (await s.execute(select(InboundUpdate)
                                  .where(InboundUpdate.key == "sandbox:msg:u1:bad-1"))).scalar_one()
    assert "this reply must not survive the failure" not in texts
    assert failed.error == "handler failed" and failed.handled_at is not None
    # The platform retrying the same message is not handled again.
    assert await bot.say("u1", "boom", id="bad-1") == bad


async def test_inner_middlewares_wrap_routing(make_config, clock) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    async with sandbox_app(make_config(), clock=clock) as bot:

        @bot.dispatcher.middleware
        async def tag(next_, ctx: Context) -> None:  # type: ignore[no-untyped-def]
            seen.append(f"before:{ctx.member.external_id}")
            await next_(ctx)
            seen.append(f"after:{len(ctx.outgoing)}")

        await bot.say("u1", "你好")
    assert seen == ["before:u1", "after:1"]


async def test_command_arguments_split_on_any_whitespace(routed: tuple[SandboxClient, KeywordFlow]) -> None:
    bot, _ = routed
    assert (await bot.say("u1", "/ping\u3000全角空格"))[0]["text"] == "pong 全角空格"
    assert (await bot.say("u1", "/ping\tone two"))[0]["text"] == "pong one two"
    assert "没有 / 这个命令" in (await bot.say("u1", "/"))[0]["text"]


async def test_a_command_registered_twice_is_refused_at_startup(database_url: str) -> None:
    from bot.clock import SystemClock
    from bot.dispatcher import Dispatcher
    from bot.texts import Texts
    from storage.engine import Database

    db = Database(database_url)
    dispatcher = Dispatcher(db, clock=SystemClock(), texts=Texts({}))
    dispatcher.include_router(make_router())
    with pytest.raises(ValueError, match="/ping is registered twice"):
        dispatcher.include_router(make_router())
    assert "ping" in dispatcher.commands  # the first registration still stands
    await db.dispose()


async def test_a_failing_on_commit_callback_does_not_fail_the_committed_update(
        routed: tuple[SandboxClient, KeywordFlow], caplog: pytest.LogCaptureFixture) -> None:
    """What runs after the commit (waking the outbox) cannot turn a handled message into an
    error its sender would retry: the answer stands, the failure is logged."""
    bot, _ = routed

    def broken(_: object) -> None:
        raise RuntimeError("boom")

    bot.dispatcher.on_commit(broken)
    [reply] = await bot.say("u1", "签到")
    assert reply["text"] == "keyword"  # the test feature's answer, not the apology
    assert "on-commit callback failed" in caplog.text
