"""Observability as an operator meets it: /metrics scraped while members and WeCom talk to the
bot, the token that guards it, and JSON log lines that name the update they concern.

The counters live in the process-wide registry that every app of this test run shares, so the
tests compare a scrape before and after, never absolute values.
"""
from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.appkeys import CHANNELS, JOBS
from bot.config import Config, LoggingConfig
from bot.context import Context
from bot.feature import Feature
from bot.filters import StartsWith
from bot.logs import make_handler
from bot.router import Router
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, text_message
from storage import points
from tests.conftest import WECOM_AES_KEY, WECOM_CORP, WECOM_TOKEN, wecom_section

API_TOKEN = "t" * 32
METRICS_TOKEN = "m" * 32

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(bot: SandboxClient, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await bot.http.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(await resp.text()) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples.items() if n == name and wanted <= got)


def has(samples: Samples, name: str) -> bool:
    return any(n == name for n, _ in samples)


def texts(replies: list[dict[str, object]]) -> list[str]:
    return [str(r["text"]) for r in replies]


# -- /metrics ------------------------------------------------------------------------------------

@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]},
                         api={"tokens": [{"token": API_TOKEN, "role": "viewer"}]})
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def test_a_scrape_shows_every_family_with_the_depths_read_from_the_database(bot: SandboxClient) -> None:
    samples = await scrape(bot)
    for name in ("siyu_inbox_unhandled", "siyu_outbox_messages", "siyu_broadcast_deliveries", "siyu_database_up",
                 "siyu_points_issued_total", "siyu_points_spent_total"):
        assert has(samples, name), name
    assert value(samples, "siyu_database_up") == 1
    # Every status and channel is there from the start, at 0: alerts need the series.
    assert value(samples, "siyu_outbox_messages", status="pending") == 0
    assert value(samples, "siyu_broadcast_deliveries", status="delivered") == 0
    assert value(samples, "siyu_inbox_unhandled", channel="sandbox") == 0

    await bot.say("u1", "签到", chat="g1", name="小王")
    await bot.say("u1", "你好")
    await bot.deliver()
    samples = await scrape(bot)
    assert value(samples, "siyu_outbox_messages", status="delivered") >= 2
    assert value(samples, "siyu_outbox_messages", status="pending") == 0


async def test_points_issued_grow_by_the_sign_ins_points_and_spent_by_a_deduction(bot: SandboxClient) -> None:
    before = await scrape(bot)
    [reply] = texts(await bot.say("u1", "签到", chat="g1", name="小王"))
    assert "+10 积分" in reply
    after = await scrape(bot)
    assert (value(after, "siyu_points_issued_total", kind="earn")
            - value(before, "siyu_points_issued_total", kind="earn")) == 10

    # A second sign-in the same day gives nothing, and counts nothing.
    assert "已经签到过" in texts(await bot.say("u1", "签到", chat="g1"))[0]
    assert (value(await scrape(bot), "siyu_points_issued_total", kind="earn")
            == value(after, "siyu_points_issued_total", kind="earn"))

    await bot.say("op1", "/points deduct u1 3 测试扣除")
    spent = await scrape(bot)
    assert (value(spent, "siyu_points_spent_total", kind="deduct")
            - value(after, "siyu_points_spent_total", kind="deduct")) == 3
    # A deduction larger than the balance is refused: nothing is taken, nothing counted.
    assert "只有 7 积分" in texts(await bot.say("op1", "/points deduct u1 500 太多"))[0]
    assert value(await scrape(bot), "siyu_points_spent_total") == value(spent, "siyu_points_spent_total")


async def test_points_count_only_when_their_transaction_commits(bot: SandboxClient) -> None:
    await bot.say("u1", "签到", chat="g1")
    before = value(await scrape(bot), "siyu_points_issued_total", kind="grant")

    class Undo(Exception):
        pass

    with pytest.raises(Undo):  # the whole transaction rolls back
        async with bot.as_operator() as ctx:
            member_id = await member_id_of(ctx, "u1")
            await points.credit(ctx.session, member_id, 100, key="rolled-back", reason="x", now=ctx.now,
                                kind=points.GRANT)
            raise Undo
    async with bot.as_operator() as ctx:
        with pytest.raises(Undo):  # only a savepoint rolls back; the transaction commits
            async with ctx.session.begin_nested():
                await points.credit(ctx.session, member_id, 200, key="savepoint", reason="x", now=ctx.now,
                                    kind=points.GRANT)
                raise Undo
        await points.credit(ctx.session, member_id, 5, key="kept", reason="x", now=ctx.now, kind=points.GRANT)
    assert value(await scrape(bot), "siyu_points_issued_total", kind="grant") - before == 5


async def member_id_of(ctx: Context, external_id: str) -> int:
    from sqlalchemy import select

    from storage.models import Member

    return (await ctx.session.execute(select(Member.id).where(Member.external_id == external_id))).scalar_one()


async def test_flow_transitions_and_deadline_timeouts(bot: SandboxClient, clock: FakeClock) -> None:
    before = await scrape(bot)
    assert "你购买或使用过我们的产品吗？" in texts(await bot.say("k1", "申请KOC", name="达人"))[0]
    started = await scrape(bot)
    flow = {"flow": "koc_screening"}
    assert (value(started, "siyu_flow_transitions_total", **flow)
            - value(before, "siyu_flow_transitions_total", **flow)) == 1
    assert "没太明白" in texts(await bot.say("k1", "火星"))[0]  # not an answer: asked again, no transition
    assert (value(await scrape(bot), "siyu_flow_transitions_total", **flow)
            == value(started, "siyu_flow_transitions_total", **flow))
    await bot.say("k1", "1")  # an answer moves the member to the next question
    answered = await scrape(bot)
    assert (value(answered, "siyu_flow_transitions_total", **flow)
            - value(started, "siyu_flow_transitions_total", **flow)) == 1

    jobs = bot.app[JOBS]
    clock.advance(hours=25)  # past [koc] remind_after_s: the reminder deadline fires once
    assert await jobs.fire_deadlines() == 1
    reminded = await scrape(bot)
    assert (value(reminded, "siyu_flow_timeouts_total", **flow)
            - value(answered, "siyu_flow_timeouts_total", **flow)) == 1
    assert await jobs.fire_deadlines() == 0
    assert (value(await scrape(bot), "siyu_flow_timeouts_total", **flow)
            == value(reminded, "siyu_flow_timeouts_total", **flow))


async def test_broadcast_deliveries_by_status(bot: SandboxClient) -> None:
    for chat in ("g1", "g2"):
        await bot.event("member_joined", f"m-{chat}", chat=chat)
    await bot.say("op1", "/broadcast all 今日话题：你最喜欢哪款新品？")
    await bot.say("op1", "确认")
    await bot.deliver()
    samples = await scrape(bot)
    assert value(samples, "siyu_broadcast_deliveries", status="delivered") == 2
    assert value(samples, "siyu_broadcast_deliveries") == 2


async def test_api_errors_are_counted_by_code_and_status(bot: SandboxClient) -> None:
    unauthorized = {"code": "unauthorized", "status": "401"}
    before = await scrape(bot)
    assert (await bot.http.get("/api/members/u1")).status == 401
    resp = await bot.http.get("/api/members/nobody", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert resp.status == 404
    after = await scrape(bot)
    assert (value(after, "siyu_api_errors_total", **unauthorized)
            - value(before, "siyu_api_errors_total", **unauthorized)) == 1
    not_found = {"code": "not_found", "status": "404"}
    assert value(after, "siyu_api_errors_total", **not_found) - value(before, "siyu_api_errors_total", **not_found) == 1


async def test_a_metrics_token_is_required_when_set(make_config: Callable[..., Config], clock: FakeClock) -> None:
    async with sandbox_app(make_config(metrics={"token": METRICS_TOKEN}), clock=clock) as bot:
        assert (await bot.http.get("/metrics")).status == 401
        wrong = await bot.http.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32})
        assert wrong.status == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Bearer" in (await wrong.json())["error"]
        assert has(await scrape(bot, METRICS_TOKEN), "siyu_outbox_messages")
        assert (await bot.http.get("/healthz")).status == 200  # the health check stays open


async def test_metrics_can_be_turned_off(make_config: Callable[..., Config], clock: FakeClock) -> None:
    async with sandbox_app(make_config(metrics={"enabled": False}), clock=clock) as bot:
        assert (await bot.http.get("/metrics")).status == 404


async def test_wecom_callback_latency_and_inbox_depth(
    make_config: Callable[..., Config], clock: FakeClock, fake: FakeWeCom,
) -> None:
    config = make_config(wecom=wecom_section(fake.base_url), operators={"admins": ["sandbox:op1", "wecom:op1"]})
    callbacks = CallbackBuilder(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP, agent_id=1000002)
    async with sandbox_app(config, clock=clock) as bot:
        before = await scrape(bot)
        path, body = callbacks.post(text_message("op1", "/help", 777, corp_id=WECOM_CORP))
        assert (await bot.http.post(path, data=body, headers={"Content-Type": "text/xml"})).status == 200
        assert await bot.app[CHANNELS]["wecom"].endpoint.idle(10)  # type: ignore[attr-defined]
        after = await scrape(bot)
        post = {"method": "POST"}
        assert (value(after, "siyu_wecom_callback_seconds_count", **post)
                - value(before, "siyu_wecom_callback_seconds_count", **post)) == 1
        assert value(after, "siyu_wecom_callback_seconds_bucket", le="5.0", **post) >= 1
        assert value(after, "siyu_inbox_unhandled", channel="wecom") == 0  # handled after the answer
        # A hostile callback is answered (refused) and timed too.
        assert (await bot.http.post(path.replace("msg_signature=", "msg_signature=0"), data=body)).status == 403
        assert (value(await scrape(bot), "siyu_wecom_callback_seconds_count", **post)
                - value(after, "siyu_wecom_callback_seconds_count", **post)) == 1


# -- JSON logs ---------------------------------------------------------------------------------

@contextmanager
def captured(format: str) -> Iterator[io.StringIO]:
    """Root-logger output in ``format``, as ``siyu run`` sets it up, with siyu's loggers at INFO."""
    stream = io.StringIO()
    handler = make_handler(LoggingConfig(format=format), stream)
    root, siyu = logging.getLogger(), logging.getLogger("siyu")
    old_level = siyu.level
    root.addHandler(handler)
    siyu.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        siyu.setLevel(old_level)


def log_router(seen: dict[str, str]) -> Router:
    """A developer's handlers that log: ``记录`` logs a line, ``出错`` raises."""
    router = Router("logs")
    log = logging.getLogger("siyu.handlers.example")

    @router.message(StartsWith("记录"))
    async def record(ctx: Context) -> None:
        seen[ctx.update.sender] = ctx.update.key
        log.info("recording for %s", ctx.update.sender)
        ctx.reply("好的")

    @router.message(StartsWith("出错"))
    async def fail(ctx: Context) -> None:
        seen[ctx.update.sender] = ctx.update.key
        raise RuntimeError("a bug")

    return router


async def test_json_logs_are_one_object_a_line_and_name_the_update(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    seen: dict[str, str] = {}
    logs = Feature("logs", routers=lambda config: [log_router(seen)])
    async with sandbox_app(make_config(features=(logs,)), clock=clock) as bot:
        with captured("json") as out:
            logging.getLogger("siyu.test").info("before any update")
            # Two members at once: each line names its own update.
            await asyncio.gather(bot.say("u1", "记录 一"), bot.say("u2", "记录 二"))
            assert texts(await bot.say("u3", "出错")) == ["抱歉，处理你的消息时出了点问题，请稍后再试。"]
    lines = [json.loads(line) for line in out.getvalue().splitlines()]  # each line parses on its own
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    first = next(line for line in lines if line["message"] == "before any update")
    assert first["logger"] == "siyu.test" and first["level"] == "INFO" and "update" not in first
    for member in ("u1", "u2"):
        [line] = [line for line in lines if line["message"] == f"recording for {member}"]
        assert line["update"] == seen[member] and line["logger"] == "siyu.handlers.example"
    [failure] = [line for line in lines if "failed; the member gets an apology" in line["message"]]
    assert (failure["update"] == seen["u3"] and failure["level"] == "ERROR"
            and "RuntimeError: a bug" in failure["exc_info"])


async def test_text_logs_keep_the_classic_line(make_config: Callable[..., Config], clock: FakeClock) -> None:
    with captured("text") as out:
        logging.getLogger("siyu.test").warning("plain %s", "line")
    [line] = [ln for ln in out.getvalue().splitlines() if "plain line" in ln]
    assert line.endswith(" WARNING siyu.test: plain line")
