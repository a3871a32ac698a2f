"""The REST API: the fixed shapes integrators rely on, roles, errors with codes, idempotent grants."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import koc

ADMIN, OPERATOR, VIEWER = "a" * 32, "o" * 32, "v" * 32


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(api={"tokens": [{"token": ADMIN, "role": "admin", "name": "ops"},
                                         {"token": OPERATOR, "role": "operator", "name": "crm"},
                                         {"token": VIEWER, "role": "viewer", "name": "bi"}]})
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate(
        {"rewards": [{"name": "保温杯", "cost": 100, "stock": 5}]}).rewards})
    async with sandbox_app(config, clock=clock) as client:
        await client.say("u1", "签到", name="小王", chat="g1")
        yield client


async def call(bot: SandboxClient, method: str, path: str, token: str | None = VIEWER, **kw: Any) -> tuple[int, Any]:
    headers = {**kw.pop("headers", {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    resp = await bot.http.request(method, path, headers=headers, **kw)
    return resp.status, await resp.json()


async def test_the_member_and_rewards_shapes_are_fixed(bot: SandboxClient) -> None:
    assert await call(bot, "GET", "/api/members/u1") == (200, {"id": "u1", "name": "小王", "points": 10,
                                                               "level": "青铜", "tags": []})
    status, data = await call(bot, "GET", "/api/rewards")
    assert status == 200 and [{k: r[k] for k in ("id", "name", "cost", "stock")} for r in data["rewards"]] == [
        {"id": 1, "name": "保温杯", "cost": 100, "stock": 5}]
    status, data = await call(bot, "GET", "/api/members/nobody")
    assert status == 404 and data["error"]["code"] == "not_found"


async def test_tokens_and_roles(bot: SandboxClient) -> None:
    assert (await call(bot, "GET", "/api/members/u1", token=None))[0] == 401
    assert (await call(bot, "GET", "/api/members/u1", token="x" * 40))[1]["error"]["code"] == "unauthorized"
    status, data = await call(bot, "POST", "/api/members/u1/points", json={"amount": 5, "reason": "x", "key": "k"})
    assert status == 403 and data["error"]["code"] == "forbidden"
    assert (await call(bot, "GET", "/api/audit", token=OPERATOR))[0] == 403
    assert (await call(bot, "GET", "/api/audit", token=ADMIN))[0] == 200
    assert (await call(bot, "GET", "/api/openapi.json", token=None))[0] == 200


async def test_points_grants_are_idempotent_and_audited(bot: SandboxClient) -> None:
    grant = {"amount": 50, "reason": "CRM 补发", "key": "order-42"}
    assert await call(bot, "POST", "/api/members/u1/points", OPERATOR, json=grant) == (
        201, {"balance": 60, "duplicate": False})
    assert await call(bot, "POST", "/api/members/u1/points", OPERATOR, json=grant) == (
        200, {"balance": 60, "duplicate": True})
    status, data = await call(bot, "POST", "/api/members/u1/points", OPERATOR,
                              json={"amount": -500, "reason": "x", "key": "k2"})
    assert status == 409 and data["error"]["code"] == "not_enough_points"
    status, data = await call(bot, "GET", "/api/members/u1/points")
    assert data["balance"] == 60 and data["entries"][0] == {**data["entries"][0], "delta": 50, "kind": "grant",
                                                            "issuer": "api:crm"}
    _, trail = await call(bot, "GET", "/api/audit", ADMIN)
    assert [e["action"] for e in trail["entries"] if e["actor"] == "api:crm"] == ["api.points", "api.points"]


@pytest.mark.parametrize("body, status, code", [
    (b"{not json", 400, "bad_json"),
    (b"[1, 2]", 422, "invalid"),
    (b'{"amount": "5", "reason": "x", "key": "k"}', 422, "invalid"),
    (b'{"amount": 5, "reason": "x", "key": "k", "extra": 1}', 422, "invalid"),
    (b'{"amount": 0, "reason": "x", "key": "k"}', 422, "invalid"),
])
async def test_bad_bodies_get_a_clear_4xx(bot: SandboxClient, body: bytes, status: int, code: str) -> None:
    got, data = await call(bot, "POST", "/api/members/u1/points", OPERATOR, data=body,
                           headers={"Content-Type": "application/json"})
    assert (got, data["error"]["code"]) == (status, code)


async def test_tags_rewards_redemptions_koc_groups_broadcasts(bot: SandboxClient, clock: FakeClock) -> None:
    assert await call(bot, "POST", "/api/members/u1/tags", OPERATOR, json={"add": ["VIP", "上海"]}) == (
        200, {"tags": ["VIP", "上海"]})
    status, data = await call(bot, "POST", "/api/rewards", OPERATOR, json={"name": "帆布袋", "cost": 5, "stock": 2})
    assert status == 201 and data["reward"]["stock"] == 2
    await bot.say("u1", f"兑换 {data['reward']['id']}")
    await bot.say("u1", "确认")
    _, listed = await call(bot, "GET", "/api/redemptions?status=reserved")
    [redemption] = listed["redemptions"]
    assert (await call(bot, "POST", f"/api/redemptions/{redemption['id']}/fulfil",
                       OPERATOR))[1]["redemption"]["status"] == "fulfilled"
    status, data = await call(bot, "POST", f"/api/redemptions/{redemption['id']}/reject", OPERATOR)
    assert status == 409 and data["error"]["code"] == "wrong_state"
    async with bot.db.transaction() as s:
        from sqlalchemy import select

        from storage.models import Member
        m = (await s.execute(select(Member.id).where(Member.external_id == "u1"))).scalar_one()
        application = await koc.submit(s, m, score=60, recommended_type="分享官", answers={}, now=clock.now())
    _, pending = await call(bot, "GET", "/api/koc/applications")
    assert [a["id"] for a in pending["applications"]] == [application]
    status, data = await call(bot, "POST", f"/api/koc/applications/{application}/reject", OPERATOR, json={})
    assert status == 422
    status, data = await call(bot, "POST", f"/api/koc/applications/{application}/approve", OPERATOR,
                              json={"type": "体验官"})
    assert status == 200 and data["application"]["approved_type"] == "体验官"
    assert (await call(bot, "POST", f"/api/koc/applications/{application}/approve", OPERATOR, json={}))[0] == 409
    assert (await call(bot, "GET", "/api/groups"))[1]["groups"][0]["id"] == "g1"
    status, created = await call(bot, "POST", "/api/broadcasts", OPERATOR,
                                 json={"target": "all", "text": "来自 CRM 的通知"})
    assert status == 201 and created["deliveries"] == {"queued": 1}
    await bot.deliver()
    assert (await call(bot, "GET", f"/api/broadcasts/{created['id']}"))[1]["deliveries"] == {"delivered": 1}
    assert (await call(bot, "POST", "/api/broadcasts", OPERATOR, json={"target": "nowhere", "text": "x"}))[0] == 404
    assert (await call(bot, "GET", "/api/broadcasts/999"))[0] == 404
    assert (await call(bot, "GET", "/api/nothing-here"))[1]["error"]["code"] == "not_found"


async def test_every_api_route_is_in_the_openapi_file(bot: SandboxClient) -> None:
    import json
    from pathlib import Path

    documented = json.loads((Path(__file__).resolve().parent.parent / "bot/api/openapi.json").read_text())["paths"]
    served = {(r.method.lower(), r.resource.canonical) for r in bot.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"}
    served.discard(("get", "/api/openapi.json"))
    assert served == {(method, path) for path, ops in documented.items() for method in ops}


async def test_a_broadcast_from_the_api_leaves_no_failed_report(bot: SandboxClient) -> None:
    """Nobody to tell in chat when the REST API started it: no report is queued to a channel
    named "api" (which failed, and fired the failed-outbox alert on every API broadcast)."""
    from sqlalchemy import func, select

    from bot.appkeys import DB, JOBS
    from storage.models import OutboxMessage

    status, created = await call(bot, "POST", "/api/broadcasts", OPERATOR, json={"target": "all", "text": "通知"})
    assert status == 201
    await bot.deliver()
    assert await bot.app[JOBS].run("broadcast_reports") == 0
    await bot.deliver()
    async with bot.app[DB].read() as s:
        counts = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        by_status = dict((await s.execute(counts)).all())
        channels = set((await s.execute(select(OutboxMessage.channel))).scalars())
    assert "failed" not in by_status and channels == {"sandbox"}


async def test_a_query_parameter_given_twice_is_refused(bot: SandboxClient) -> None:
    """``?limit=7&limit=x`` is a mistake (or a probe), not a request for the first value."""
    status, data = await call(bot, "GET", "/api/audit?limit=7&limit=x", token=ADMIN)
    assert status == 400 and "more than once: limit" in data["error"]["message"]
    status, _ = await call(bot, "GET", "/api/audit?limit=7", token=ADMIN)
    assert status == 200
