"""The REST API's Idempotency-Key: a creating POST sent again (a proxy's retry, a client's second
try) gets the first answer instead of creating twice; the same key with another request is a 409."""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlmodel import col

from bot.appkeys import JOBS
from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import idempotency, koc
from storage.engine import Database
from storage.models import AuditEntry, Broadcast, Member, Reward

ADMIN, OPERATOR = "a" * 32, "o" * 32
CUP = {"name": "保温杯", "cost": 100, "stock": 3}


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(api={"tokens": [{"token": ADMIN, "role": "admin", "name": "ops"},
                                         {"token": OPERATOR, "role": "operator", "name": "crm"}]})
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate(
        {"rewards": [{"name": "保温杯", "cost": 100, "stock": 5}]}).rewards})
    async with sandbox_app(config, clock=clock) as client:
        await client.say("u1", "签到", name="小王", chat="g1")
        await client.say("u2", "签到", name="小李", chat="g1")
        yield client


async def post(bot: SandboxClient, path: str, body: Any = None, *, key: str | None = None,
               token: str = OPERATOR) -> tuple[int, Any, bool]:
    """(status, JSON body, whether the answer says it is a replay) of one POST."""
    headers = {"Authorization": f"Bearer {token}", **({"Idempotency-Key": key} if key is not None else {})}
    resp = await bot.http.post(path, json=body, headers=headers)
    return resp.status, await resp.json(), resp.headers.get("Idempotent-Replayed") == "true"


async def count(bot: SandboxClient, model: Any, *where: Any) -> int:
    async with bot.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


async def stock(bot: SandboxClient) -> int:
    async with bot.db.read() as s:
        return int((await s.execute(select(Reward.stock).where(col(Reward.name) == "保温杯"))).scalar_one())


async def test_a_broadcast_posted_twice_with_one_key_is_made_once(bot: SandboxClient) -> None:
    news = {"target": "all", "text": "来自 CRM 的通知"}
    status, first, replayed = await post(bot, "/api/broadcasts", news, key="news-1")
    assert (status, replayed) == (201, False)
    assert await post(bot, "/api/broadcasts", news, key="news-1") == (201, first, True)
    assert await count(bot, Broadcast) == 1
    await bot.deliver()
    assert [m["text"] for m in await bot.outbox(chat="g1")].count("来自 CRM 的通知") == 1
    assert await count(bot, AuditEntry, col(AuditEntry.action) == "api.broadcast") == 1


async def test_a_reward_posted_twice_with_one_key_is_stocked_once(bot: SandboxClient) -> None:
    status, first, _ = await post(bot, "/api/rewards", CUP, key="restock-7")
    assert status == 201 and first["reward"]["stock"] == 8
    assert await post(bot, "/api/rewards", CUP, key="restock-7") == (201, first, True)
    assert await stock(bot) == 8


async def test_the_same_key_with_another_request_is_refused_and_changes_nothing(bot: SandboxClient) -> None:
    assert (await post(bot, "/api/rewards", CUP, key="k1"))[0] == 201
    for path, body in [("/api/rewards", {**CUP, "stock": 4}),                 # another body
                       ("/api/broadcasts", {"target": "all", "text": "x"})]:  # another endpoint
        status, data, _ = await post(bot, path, body, key="k1")
        assert (status, data["error"]["code"]) == (409, "idempotency_mismatch")
    assert await stock(bot) == 8 and await count(bot, Broadcast) == 0


async def test_keys_are_per_client(bot: SandboxClient) -> None:
    news = {"target": "all", "text": "通知"}
    assert (await post(bot, "/api/broadcasts", news, key="same"))[2] is False
    assert (await post(bot, "/api/broadcasts", news, key="same", token=ADMIN))[2] is False
    assert await count(bot, Broadcast) == 2


async def test_without_a_key_a_repeat_creates_again_as_before(bot: SandboxClient) -> None:
    news = {"target": "all", "text": "通知"}
    assert [(await post(bot, "/api/broadcasts", news))[0] for _ in range(2)] == [201, 201]
    assert (await post(bot, "/api/rewards", CUP))[0] == 201 and (await post(bot, "/api/rewards", CUP))[0] == 201
    assert await count(bot, Broadcast) == 2 and await stock(bot) == 11


@pytest.mark.parametrize("key, problem", [
    ("", "empty"),
    ("k" * 201, "at most 200"),
    ("ключ", "printable ASCII"),
    ("tab\there", "printable ASCII"),
])
async def test_a_bad_key_is_a_400_naming_the_problem(bot: SandboxClient, key: str, problem: str) -> None:
    resp = await bot.http.post("/api/broadcasts", json={"target": "all", "text": "x"},
                               headers={"Authorization": f"Bearer {OPERATOR}", "Idempotency-Key": key})
    data = await resp.json()
    assert (resp.status, data["error"]["code"]) == (400, "bad_idempotency_key") and problem in data["error"]["message"]
    assert await count(bot, Broadcast) == 0


async def test_two_keys_in_one_request_are_a_400(bot: SandboxClient) -> None:
    resp = await bot.http.post("/api/broadcasts", json={"target": "all", "text": "x"},
                               headers=[("Authorization", f"Bearer {OPERATOR}"), ("Idempotency-Key", "a"),
                                        ("Idempotency-Key", "b")])
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_idempotency_key"
    assert await count(bot, Broadcast) == 0


async def test_every_changing_post_answers_a_repeat_with_its_first_answer(bot: SandboxClient,
                                                                         clock: FakeClock) -> None:
    # Without the key, each of these answers a repeat differently (409 wrong_state, a second entry ...).
    await post(bot, "/api/members/u1/points", {"amount": 200, "reason": "活动", "key": "gift"})
    await bot.say("u1", "兑换 1")
    await bot.say("u1", "确认")
    async with bot.db.transaction() as s:
        member = (await s.execute(select(Member.id).where(col(Member.external_id) == "u2"))).scalar_one()
        application = await koc.submit(s, member, score=60, recommended_type="分享官", answers={}, now=clock.now())
    calls: list[tuple[str, Any]] = [
        ("/api/members/u1/tags", {"add": ["VIP"]}),
        ("/api/members/u1/points", {"amount": 5, "reason": "补发", "key": "order-1"}),
        ("/api/redemptions/1/fulfil", None),
        (f"/api/koc/applications/{application}/approve", {"type": "体验官"}),
        ("/api/broadcasts", {"target": "g1", "text": "hi"}),
        ("/api/rewards", CUP),
    ]
    for n, (path, body) in enumerate(calls):
        status, first, _ = await post(bot, path, body, key=f"call-{n}")
        assert status in (200, 201), (path, first)
        assert await post(bot, path, body, key=f"call-{n}") == (status, first, True), path


async def test_an_error_is_not_kept_so_a_retry_tries_again(bot: SandboxClient) -> None:
    news = {"target": "g2", "text": "新群你好"}
    status, data, _ = await post(bot, "/api/broadcasts", news, key="new-1")
    assert (status, data["error"]["code"]) == (404, "no_groups")
    await bot.say("u1", "签到", chat="g2")  # the group is known now
    assert (await post(bot, "/api/broadcasts", news, key="new-1"))[0] == 201
    assert await count(bot, Broadcast) == 1


async def test_concurrent_repeats_create_once(bot: SandboxClient) -> None:
    # On PostgreSQL the repeats run in concurrent transactions: the later ones wait on the first's
    # key and then answer with its answer.
    news = {"target": "all", "text": "并发"}
    answers = await asyncio.gather(*(post(bot, "/api/broadcasts", news, key="race") for _ in range(5)))
    assert sorted(replayed for _, _, replayed in answers) == [False, True, True, True, True]
    assert len({json.dumps(body, sort_keys=True) for _, body, _ in answers}) == 1
    assert await count(bot, Broadcast) == 1


async def test_keys_are_kept_a_day(bot: SandboxClient, clock: FakeClock) -> None:
    assert (await post(bot, "/api/rewards", CUP, key="daily"))[0] == 201
    clock.advance(hours=23)
    jobs = bot.app[JOBS]
    assert await jobs.run("api_idempotency_keys") == 0
    assert (await post(bot, "/api/rewards", CUP, key="daily"))[2] is True
    clock.advance(hours=2)
    assert await jobs.run("api_idempotency_keys") == 1
    assert (await post(bot, "/api/rewards", CUP, key="daily"))[2] is False  # a new request after a day
    assert await stock(bot) == 11


@pytest.mark.parametrize("second", [
    {"path": "/api/members/u2/points", "amount": 50},   # another member
    {"path": "/api/members/u1/points", "amount": 60},   # another amount
    {"path": "/api/members/u1/points", "amount": -50},  # a deduct
])
async def test_a_ledger_key_used_for_another_grant_is_a_409(bot: SandboxClient, second: dict[str, Any]) -> None:
    grant = {"amount": 50, "reason": "CRM 补发", "key": "order-42"}
    assert (await post(bot, "/api/members/u1/points", grant))[:2] == (201, {"balance": 60, "duplicate": False})
    assert (await post(bot, "/api/members/u1/points", grant))[:2] == (200, {"balance": 60, "duplicate": True})
    status, data, _ = await post(bot, second["path"], {**grant, "amount": second["amount"]})
    assert (status, data["error"]["code"]) == (409, "idempotency_mismatch")
    for who, balance in (("u1", 60), ("u2", 10)):
        resp = await bot.http.get(f"/api/members/{who}", headers={"Authorization": f"Bearer {OPERATOR}"})
        assert (await resp.json())["points"] == balance


def test_the_openapi_file_documents_the_key_on_every_post() -> None:
    document = json.loads((Path(__file__).resolve().parent.parent / "bot/api/openapi.json").read_text())
    posts = {path: ops["post"] for path, ops in document["paths"].items() if "post" in ops}
    assert posts
    for path, op in posts.items():
        names = [document["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"] if "$ref" in p
                 else p["name"] for p in op.get("parameters", [])]
        assert "Idempotency-Key" in names, path
        assert {"400", "409"} <= set(op["responses"]), path


async def _waiting_on_a_lock(db: Database) -> None:
    """Until another connection waits on a row lock (a bounded poll of the server's state, not a sleep
    for time to pass: the test must see the second request blocked before the first commits)."""
    for _ in range(500):
        async with db.read() as s:
            if (await s.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))).scalar_one():
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the second request never waited for the first")


@pytest.mark.parametrize("first_commits", [True, False])
async def test_a_repeat_racing_the_first_on_another_process_waits_for_it(
    db: Database, database_url: str, on_postgres: bool, clock: FakeClock, first_commits: bool,
) -> None:
    if not on_postgres:
        pytest.skip("two processes write at once on PostgreSQL only (SQLite's writers take turns)")
    other = Database(database_url)  # another process's connections
    try:
        async def second() -> idempotency.Answer | None:
            async with other.transaction() as s:
                return await idempotency.claim(s, "api:crm", "k", "hash", now=clock.now())

        with contextlib.suppress(RuntimeError):
            async with db.transaction() as s:
                assert await idempotency.claim(s, "api:crm", "k", "hash", now=clock.now()) is None
                racing = asyncio.create_task(second())
                await _waiting_on_a_lock(other)
                await idempotency.save(s, "api:crm", "k", status=201, body='{"id": 1}')
                if not first_commits:
                    raise RuntimeError("the first request failed: its transaction rolls back")
        # The first's answer once it committed; had it rolled back, the second claims the key itself.
        assert await racing == (idempotency.Answer("hash", 201, '{"id": 1}') if first_commits else None)
    finally:
        await other.dispose()


async def test_a_restock_naming_another_cost_is_refused_not_ignored(bot: SandboxClient) -> None:
    status, data, _ = await post(bot, "/api/rewards", {**CUP, "cost": 50})
    assert (status, data["error"]["code"]) == (409, "reward_differs") and "cost 100" in data["error"]["message"]
    assert await stock(bot) == 5
    assert (await post(bot, "/api/rewards", {**CUP, "approval": False}))[0] == 201  # as it is: restocked
    assert await stock(bot) == 8
