"""Task check-ins that wait for approval, reviewed where operators work: the REST API and the
console (the chat command is in test_tasks.py). Points go out once, whoever approves and however
often; the member is told either way; every decision is audited."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import points
from storage.models import AuditEntry, Member, PointEntry, TaskCheckin

ADMIN, OPERATOR, VIEWER = "a" * 32, "o" * 32, "v" * 32
PASSWORD = "operator-password-1"
USERS = [{"name": "ops", "password": PASSWORD, "role": "operator"},
         {"name": "look", "password": "viewer-password-1", "role": "viewer"}]
APPROVED = "你的「晒单」打卡审核通过啦：+50 积分，当前积分 50。"
TASKS = [{"name": "晒单", "points": 50, "per_day": 0, "approval": True, "proof": True},
         {"name": "转发", "points": 10}]


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(api={"tokens": [{"token": ADMIN, "role": "admin", "name": "ops"},
                                         {"token": OPERATOR, "role": "operator", "name": "crm"},
                                         {"token": VIEWER, "role": "viewer", "name": "bi"}]},
                         console={"users": USERS, "secret": "s" * 32})
    config = config.model_copy(update={"tasks": SiyuConfig.model_validate({"tasks": TASKS}).tasks})
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def check_in(bot: SandboxClient, who: str, proof: str) -> int:
    """The member checks in to 晒单 in the group; the new check-in's number."""
    [answer] = await bot.say(who, f"打卡 晒单 {proof}", chat="g1", name=f"达人{who}")
    assert "审核通过后发放 50 积分" in answer["text"]
    async with bot.db.read() as s:
        return int((await s.execute(select(func.max(TaskCheckin.id)))).scalar_one())


async def balance(bot: SandboxClient, who: str) -> int:
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == who))).scalar_one()
        return await points.balance(s, member.id)


async def credits(bot: SandboxClient, checkin: int) -> int:
    async with bot.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(PointEntry)
                                    .where(PointEntry.key == f"task-credit:{checkin}"))).scalar_one())


async def last_to(bot: SandboxClient, who: str) -> str:
    return str((await bot.outbox(to=who))[-1]["text"])


async def call(bot: SandboxClient, method: str, path: str, token: str = VIEWER, **kw: Any) -> tuple[int, Any]:
    headers = {**kw.pop("headers", {}), "Authorization": f"Bearer {token}"}
    resp = await bot.http.request(method, path, headers=headers, **kw)
    return resp.status, await resp.json()


async def test_the_api_lists_approves_and_rejects_checkins(bot: SandboxClient) -> None:
    first, second = await check_in(bot, "u1", "订单号123"), await check_in(bot, "u2", "订单号456")
    status, listed = await call(bot, "GET", "/api/tasks/checkins")
    assert status == 200 and [(c["id"], c["member"], c["name"], c["task"], c["points"], c["proof"], c["status"])
                              for c in listed["checkins"]] == [
        (first, "u1", "达人u1", "晒单", 50, "订单号123", "pending"),
        (second, "u2", "达人u2", "晒单", 50, "订单号456", "pending")]
    status, data = await call(bot, "POST", f"/api/tasks/checkins/{first}/approve", VIEWER)
    assert status == 403 and data["error"]["code"] == "forbidden"
    status, data = await call(bot, "POST", f"/api/tasks/checkins/{first}/approve", OPERATOR, json={})
    assert status == 200 and data["checkin"]["status"] == "credited"
    assert await balance(bot, "u1") == 50 and await last_to(bot, "u1") == APPROVED
    status, data = await call(bot, "POST", f"/api/tasks/checkins/{first}/approve", OPERATOR, json={})
    assert status == 409 and data["error"]["code"] == "wrong_state"
    status, data = await call(bot, "POST", f"/api/tasks/checkins/{second}/reject", OPERATOR,
                              json={"reason": "订单号查不到"})
    assert status == 200 and data["checkin"]["status"] == "rejected"
    assert await balance(bot, "u2") == 0
    assert await last_to(bot, "u2") == "你的「晒单」打卡这次没有通过审核：订单号查不到。有疑问可以找运营同学～"
    assert (await call(bot, "GET", "/api/tasks/checkins"))[1] == {"checkins": []}
    _, decided = await call(bot, "GET", "/api/tasks/checkins?status=rejected")
    assert [c["id"] for c in decided["checkins"]] == [second]
    _, trail = await call(bot, "GET", "/api/audit", ADMIN)
    assert [e["action"] for e in trail["entries"] if e["actor"] == "api:crm"][::-1] == [
        "task.approve", "api.task.approve", "task.reject", "api.task.reject"]


@pytest.mark.parametrize("method, path, body, status, code", [
    ("GET", "/api/tasks/checkins?status=done", None, 400, "bad_request"),
    ("GET", "/api/tasks/checkins?limit=0", None, 400, "bad_request"),
    ("POST", "/api/tasks/checkins/999/approve", {}, 404, "not_found"),
    ("POST", "/api/tasks/checkins/abc/approve", None, 404, "not_found"),
    ("POST", "/api/tasks/checkins/1/approve", {"points": 500}, 422, "invalid"),
    ("POST", "/api/tasks/checkins/1/reject", {"reason": "   "}, 422, "invalid"),
    ("POST", "/api/tasks/checkins/1/reject", {"reason": "x" * 201}, 422, "invalid"),
    ("POST", "/api/tasks/checkins/1/reject", [1], 422, "invalid"),
    ("POST", "/api/tasks/checkins/1/approve", None, 400, "bad_json"),  # no body: {} approves
])
async def test_bad_requests_get_a_clear_4xx(bot: SandboxClient, method: str, path: str, body: Any, status: int,
                                           code: str) -> None:
    await check_in(bot, "u1", "订单号123")
    got, data = await call(bot, method, path, OPERATOR, **({"json": body} if body is not None else {}))
    assert (got, data["error"]["code"]) == (status, code)
    assert await balance(bot, "u1") == 0


async def test_a_repeated_approval_under_one_key_gets_the_first_answer(bot: SandboxClient) -> None:
    checkin = await check_in(bot, "u1", "订单号123")
    headers = {"Idempotency-Key": "approve-1"}
    first = await bot.http.post(f"/api/tasks/checkins/{checkin}/approve", json={},
                                headers={**headers, "Authorization": f"Bearer {OPERATOR}"})
    again = await bot.http.post(f"/api/tasks/checkins/{checkin}/approve", json={},
                                headers={**headers, "Authorization": f"Bearer {OPERATOR}"})
    assert (first.status, again.status) == (200, 200) and await first.json() == await again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await balance(bot, "u1") == 50 and await credits(bot, checkin) == 1


async def test_racing_approvals_grant_the_points_once(bot: SandboxClient) -> None:
    checkin = await check_in(bot, "u1", "订单号123")
    answers = await asyncio.gather(*(call(bot, "POST", f"/api/tasks/checkins/{checkin}/approve", OPERATOR, json={},
                                          headers={"Idempotency-Key": f"racer-{i}"}) for i in range(4)))
    assert sorted(status for status, _ in answers) == [200, 409, 409, 409]
    assert await balance(bot, "u1") == 50 and await credits(bot, checkin) == 1
    told = [m for m in await bot.outbox(to="u1") if "审核通过" in m["text"]]
    assert len(told) == 1


# The console, over HTTP as a browser without scripts uses it.

async def sign_in(bot: SandboxClient, name: str = "ops", password: str = PASSWORD) -> str:
    return await bot.sign_in(name, password)


async def test_the_console_queue_shows_the_proof_and_decides(bot: SandboxClient) -> None:
    first = await check_in(bot, "u1", "订单号123 <script>alert(1)</script>")
    second = await check_in(bot, "u2", "https://example.com/晒单截图")
    csrf = await sign_in(bot)
    page = await (await bot.http.get("/console/tasks")).text()
    assert "打卡审核（2 待审核）" in page and 'href="/console/tasks"' in page
    assert "订单号123 &lt;script&gt;" in page and "<script>alert" not in page  # the proof, escaped
    assert "https://example.com/晒单截图" in page and "达人u1" in page and "+50" in page
    resp = await bot.http.post(f"/console/tasks/{first}", data={"decision": "approve"})
    assert resp.status == 403  # no CSRF token: refused
    resp = await bot.http.post(f"/console/tasks/{first}", data={"csrf": csrf, "decision": "approve"})
    page = await resp.text()
    assert resp.status == 200 and f"打卡 #{first} 已通过，发放 50 积分，已通知成员" in page
    assert await balance(bot, "u1") == 50 and await last_to(bot, "u1") == APPROVED
    resp = await bot.http.post(f"/console/tasks/{first}", data={"csrf": csrf, "decision": "approve"})
    assert f"打卡 #{first} 已经处理过（已发积分），未做改动" in await resp.text()
    assert await balance(bot, "u1") == 50 and await credits(bot, first) == 1
    resp = await bot.http.post(f"/console/tasks/{second}", data={"csrf": csrf, "decision": "reject",
                                                                  "reason": "截图看不清"})
    assert f"打卡 #{second} 已拒绝，已通知成员" in await resp.text()
    assert await last_to(bot, "u2") == "你的「晒单」打卡这次没有通过审核：截图看不清。有疑问可以找运营同学～"
    page = await (await bot.http.get("/console/tasks")).text()
    assert "打卡审核（0 待审核）" in page and "没有待审核的打卡" in page
    async with bot.db.read() as s:
        actions = list((await s.execute(select(AuditEntry.action).where(AuditEntry.actor == "console:ops")
                                        .order_by(AuditEntry.id))).scalars())
    assert actions == ["task.approve", "task.approve", "task.reject"]


@pytest.mark.parametrize("form, status, message", [
    ({"decision": "maybe"}, 400, "请选择通过或拒绝"),
    ({"decision": "reject", "reason": "x" * 201}, 400, "理由最多 200 个字"),
])
async def test_the_console_refuses_a_bad_form_clearly(bot: SandboxClient, form: dict[str, str], status: int,
                                                     message: str) -> None:
    checkin = await check_in(bot, "u1", "订单号123")
    csrf = await sign_in(bot)
    resp = await bot.http.post(f"/console/tasks/{checkin}", data={"csrf": csrf, **form})
    assert resp.status == status and message in await resp.text()
    resp = await bot.http.post("/console/tasks/999", data={"csrf": csrf, "decision": "approve"})
    assert resp.status == 404 and "没有这条打卡" in await resp.text()


async def test_a_viewer_reads_the_queue_but_cannot_decide(bot: SandboxClient) -> None:
    checkin = await check_in(bot, "u1", "订单号123")
    csrf = await sign_in(bot, "look", "viewer-password-1")
    page = await (await bot.http.get("/console/tasks")).text()
    assert "订单号123" in page and "只读" in page and f'action="/console/tasks/{checkin}"' not in page
    resp = await bot.http.post(f"/console/tasks/{checkin}", data={"csrf": csrf, "decision": "approve"})
    assert resp.status == 403 and await balance(bot, "u1") == 0


async def test_an_approval_that_brings_a_new_level_congratulates_the_member(make_config: Callable[..., Config],
                                                                            clock: FakeClock) -> None:
    config = make_config(api={"tokens": [{"token": OPERATOR, "role": "operator", "name": "crm"}]},
                         levels={"tiers": [{"name": "新人", "min_points": 0}, {"name": "达人", "min_points": 50}]})
    config = config.model_copy(update={"tasks": SiyuConfig.model_validate({"tasks": TASKS}).tasks})
    async with sandbox_app(config, clock=clock) as bot:
        checkin = await check_in(bot, "u1", "订单号123")
        status, _ = await call(bot, "POST", f"/api/tasks/checkins/{checkin}/approve", OPERATOR, json={})
        assert status == 200
        told = [m["text"] for m in await bot.outbox(to="u1")]
    assert told[-2] == APPROVED and "达人" in told[-1]
