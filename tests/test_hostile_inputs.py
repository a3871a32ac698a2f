"""The hostile-input corpus (``hostile_inputs.json``) against every endpoint it applies to: each
request is refused with a 4xx, never a 5xx, and leaves the database as it was (on SQLite and on
PostgreSQL, which refuses NUL in text). Each endpoint's valid request is accepted at the end, so
every refusal was the hostile part's doing."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from conftest import WECOM_AES_KEY, WECOM_CORP, WECOM_TOKEN, wecom_section
from hostile_corpus import CORPUS, Endpoint, Refusals, made, text, with_query
from sqlalchemy import select

from bot.builtin import SiyuConfig
from bot.channels.bridge.channel import sign, signed_headers
from bot.channels.wecom.crypto import signature
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, text_message
from storage import koc
from storage.models import KocApplication, Member, Redemption, TaskCheckin

TOKEN, METRICS_TOKEN, SECRET = "a" * 32, "m" * 32, "s" * 40
PASSWORD = "admin-password-12"
API = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock, fake: FakeWeCom) -> AsyncIterator[SandboxClient]:
    config = make_config(
        operators={"admins": ["sandbox:op1"]}, api={"tokens": [{"token": TOKEN, "role": "admin", "name": "crm"}]},
        console={"users": [{"name": "boss", "password": PASSWORD, "role": "admin"}], "secret": "c" * 32},
        bridge={"enabled": True, "secret": SECRET, "gateway_url": "http://127.0.0.1:9/send", "account": "brand-01"},
        wecom=wecom_section(fake.base_url, replay_window_s=300), metrics={"token": METRICS_TOKEN},
        scheduler={"enabled": False, "quiet_hours": []})
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate(
        {"rewards": [{"name": "保温杯", "cost": 5, "stock": 5}]}).rewards,
        "tasks": SiyuConfig.model_validate({"tasks": [{"name": "晒单", "points": 5, "approval": True}]}).tasks})
    async with sandbox_app(config, clock=clock) as client:
        for who in ("u1", "u2"):
            await client.say(who, "签到", chat="g1", name=f"成员{who}")
        for who in ("u1", "u2"):  # two check-ins waiting for approval
            await client.say(who, "打卡 晒单 订单号", chat="g1")
        await client.say("u1", "兑换 1")
        await client.say("u1", "确认")
        async with client.db.transaction() as s:
            for who in ("u1", "u2"):
                member = (await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one()
                await koc.submit(s, member, score=60, recommended_type="分享官", answers={}, now=clock.now())
        await client.deliver()
        yield client


async def ids(bot: SandboxClient) -> tuple[str, str, str, str, str]:
    """The seeded redemption, the two KOC applications and the two task check-ins."""
    async with bot.db.read() as s:
        redemption = (await s.execute(select(Redemption.id))).scalar_one()
        first, second = (await s.execute(select(KocApplication.id).order_by(KocApplication.id))).scalars()
        approved, rejected = (await s.execute(select(TaskCheckin.id).order_by(TaskCheckin.id))).scalars()
    return str(redemption), str(first), str(second), str(approved), str(rejected)


def endpoints(redemption: str, first: str, second: str, approved: str = "1", rejected: str = "2") -> list[Endpoint]:
    member = {"id": "u1"}
    return [
        Endpoint("POST", "/sandbox/messages", {"from": "u9", "chat": "g1", "text": "签到", "name": "新人", "id": "m-1"},
                 text_fields=("from", "chat", "text", "name", "id")),
        Endpoint("POST", "/sandbox/events", {"type": "member_joined", "user": "u9", "chat": "g1", "state": "poster",
                                             "name": "新人", "id": "e-1"},
                 text_fields=("type", "user", "chat", "state", "name", "id")),
        Endpoint("GET", "/sandbox/outbox", numbers=("since", "limit"), texts=("chat", "to")),
        Endpoint("GET", "/sandbox"),
        Endpoint("GET", "/"),
        Endpoint("GET", "/sandbox/roles"),
        Endpoint("POST", "/bridge/events", {"id": "evt-1", "type": "message", "account": "brand-01",
                                            "chat": "room-1", "from": "wxid_a", "name": "小王", "text": "签到"},
                 text_fields=("id", "type", "account", "chat", "from", "name", "text")),
        Endpoint("GET", "/api/members", numbers=("limit",), texts=("q",)),
        Endpoint("GET", "/api/members/u1", texts=("channel",), path_texts=member, route="/api/members/{id}"),
        Endpoint("POST", "/api/members/u1/tags", {"add": ["VIP"], "remove": ["旧"]}, text_fields=("add.0", "remove.0"),
                 texts=("channel",), path_texts=member, route="/api/members/{id}/tags"),
        Endpoint("GET", "/api/members/u1/points", numbers=("limit",), texts=("channel",), path_texts=member,
                 route="/api/members/{id}/points"),
        Endpoint("POST", "/api/members/u1/points", {"amount": 5, "reason": "补发", "key": "k-1"},
                 text_fields=("reason", "key"), integer_fields=("amount",), texts=("channel",), path_texts=member,
                 route="/api/members/{id}/points"),
        Endpoint("GET", "/api/rewards"),
        Endpoint("POST", "/api/rewards", {"name": "帆布袋", "cost": 5, "stock": 2, "per_member_limit": 1,
                                          "approval": False},
                 text_fields=("name",), integer_fields=("cost", "stock", "per_member_limit"),
                 other_fields=("approval",)),
        Endpoint("GET", "/api/redemptions", numbers=("limit",), texts=("status",)),
        Endpoint("POST", f"/api/redemptions/{redemption}/fulfil", path_numbers={"redemption": redemption},
                 path_texts={"action": "fulfil"}, route="/api/redemptions/{redemption}/{action}"),
        Endpoint("GET", "/api/koc/applications", numbers=("limit",), texts=("status",)),
        Endpoint("POST", f"/api/koc/applications/{first}/approve", {"type": "体验官"}, text_fields=("type",),
                 path_numbers={"application": first}, route="/api/koc/applications/{application}/approve"),
        Endpoint("POST", f"/api/koc/applications/{second}/reject", {"reason": "资料不全"}, text_fields=("reason",),
                 path_numbers={"application": second}, route="/api/koc/applications/{application}/reject"),
        Endpoint("GET", "/api/tasks/checkins", numbers=("limit",), texts=("status",)),
        Endpoint("POST", f"/api/tasks/checkins/{approved}/approve", {}, path_numbers={"checkin": approved},
                 route="/api/tasks/checkins/{checkin}/approve"),
        Endpoint("POST", f"/api/tasks/checkins/{rejected}/reject", {"reason": "截图不清"}, text_fields=("reason",),
                 path_numbers={"checkin": rejected}, route="/api/tasks/checkins/{checkin}/reject"),
        Endpoint("GET", "/api/groups", numbers=("limit", "offset")),
        Endpoint("POST", "/api/broadcasts", {"target": "all", "text": "通知"}, text_fields=("target", "text")),
        Endpoint("GET", "/api/broadcasts/1", path_numbers={"broadcast": "1"}, route="/api/broadcasts/{broadcast}"),
        Endpoint("GET", "/api/audit", numbers=("limit",)),
        Endpoint("POST", "/api/handovers", {"from": "zhangsan", "to": "wangwu", "scope": "all"},
                 text_fields=("from", "to", "scope")),
        Endpoint("GET", "/api/handovers/1", path_numbers={"handover": "1"}, route="/api/handovers/{handover}"),
        Endpoint("GET", "/api/openapi.json"),
        Endpoint("GET", "/console", dates=("from", "to")),
        Endpoint("POST", "/console/refresh", form={}),
        Endpoint("GET", "/console/groups", numbers=("page",), texts=("q", "sort"), free=("desc",)),
        Endpoint("GET", "/console/groups/1", path_numbers={"group": "1"}, route="/console/groups/{group}"),
        Endpoint("GET", "/console/members", texts=("q",)),
        Endpoint("GET", "/console/members/1", path_numbers={"member": "1"}, route="/console/members/{member}"),
        Endpoint("GET", "/console/broadcasts"),
        Endpoint("GET", "/console/audit", numbers=("page",)),
        Endpoint("GET", "/console/koc", free=("notice",)),
        Endpoint("POST", f"/console/koc/{first}", path_numbers={"application": first},
                 form={"decision": "approve", "type": "体验官"}, route="/console/koc/{application}"),
        Endpoint("GET", "/console/tasks", free=("notice",)),
        Endpoint("POST", f"/console/tasks/{rejected}", path_numbers={"checkin": rejected},
                 form={"decision": "reject", "reason": "截图不清"}, route="/console/tasks/{checkin}"),
        Endpoint("GET", "/console/rewards", free=("notice",)),
        Endpoint("POST", f"/console/redemptions/{redemption}", path_numbers={"redemption": redemption},
                 form={"action": "fulfil"}, route="/console/redemptions/{redemption}"),
        Endpoint("GET", "/console/static/console.css", path_texts={"filename": "console.css"},
                 route="/console/static/{filename}"),
        Endpoint("GET", "/console/login", free=("next",)),
        Endpoint("POST", "/console/logout", form={}),
        Endpoint("GET", "/healthz"),
        Endpoint("GET", "/metrics"),
        Endpoint("GET", "/m"),
        Endpoint("GET", "/m/", texts=("as", "c")),  # c: a link's campaign
        Endpoint("POST", "/m/checkin", form={}),
        Endpoint("POST", "/m/signout", form={}),
        Endpoint("GET", "/m/static/m.css", path_texts={"filename": "m.css"}, route="/m/static/{filename}"),
        Endpoint("GET", "/m/oauth", texts=("code", "state")),  # WeCom's web authorization comes back here
        Endpoint("GET", "/m/contact-qr"),
        Endpoint("GET", "/m/mall"),
        Endpoint("GET", "/m/mall/1", path_numbers={"reward": "1"}, route="/m/mall/{reward}"),
        Endpoint("POST", "/m/mall/1/redeem", path_numbers={"reward": "1"}, form={"nonce": "0" * 32},
                 route="/m/mall/{reward}/redeem"),
        Endpoint("GET", "/m/redemptions"),
        Endpoint("GET", f"/m/redemptions/{redemption}", path_numbers={"redemption": redemption},
                 route="/m/redemptions/{redemption}"),
        Endpoint("GET", "/m/points"),
        Endpoint("GET", "/m/pictures/reward/1", path_numbers={"reward": "1"}, free=("v",),
                 route="/m/pictures/reward/{reward}"),
        Endpoint("GET", "/console/rewards/1", path_numbers={"reward": "1"}, route="/console/rewards/{reward}"),
        Endpoint("POST", "/console/rewards/1", path_numbers={"reward": "1"}, form={"description": "不锈钢保温杯"},
                 route="/console/rewards/{reward}"),
        Endpoint("GET", "/m/tasks"),
        Endpoint("POST", "/m/tasks/晒单/checkin", form={"proof": "订单号"}, path_texts={"name": "晒单"},
                 route="/m/tasks/{name}/checkin"),
        Endpoint("GET", f"/m/tasks/photos/{approved}", path_numbers={"checkin": approved},
                 route="/m/tasks/photos/{checkin}"),
        Endpoint("GET", f"/console/tasks/{approved}/photo", path_numbers={"checkin": approved},
                 route="/console/tasks/{checkin}/photo"),
        Endpoint("GET", "/m/votes"),
        Endpoint("POST", "/m/votes/1/vote", form={"option": "1"}, path_numbers={"poll": "1"},
                 route="/m/votes/{poll}/vote"),
        Endpoint("GET", "/m/ranks", texts=("period",)),
        Endpoint("GET", "/m/me"),
        Endpoint("POST", "/m/me/profile", form={"q_city": "上海", "q_age": "28", "q_source": "朋友推荐"}),
        Endpoint("POST", "/m/me/consent", form={"consent": "1"}),
        Endpoint("POST", "/m/me/phone", form={"phone": "13812345678"}),
        Endpoint("POST", "/m/me/phone/remove", form={}),
        Endpoint("GET", "/m/koc"),
        Endpoint("POST", "/m/koc", form={"bought": "还没有", "activities": "偶尔参加", "platforms": "都不太用",
                                        "preference": "分享品牌内容", "hours": "3"}),
    ]


def json_send(bot: SandboxClient, e: Endpoint, body: bytes) -> dict[str, Any]:
    """Headers and data of a POST of ``body`` to ``e``: signed for the bridge, a token for the API."""
    headers = {"Content-Type": "application/json"}
    if e.path.startswith("/bridge/"):
        headers = signed_headers(SECRET, body, now=bot.dispatcher.clock.now().timestamp())
    elif e.path.startswith("/api/"):
        headers |= API
    return {"data": body, "headers": headers}


async def sign_in(bot: SandboxClient) -> str:
    """Sign in to the console and, as member u1, to the member center (a fresh browser); the
    CSRF token of the console's forms (``member_csrf`` has the member center's)."""
    bot.http.session.cookie_jar.clear()
    login = await (await bot.http.get("/console/login")).text()
    resp = await bot.http.post("/console/login", allow_redirects=False, data={
        "name": "boss", "password": PASSWORD, "csrf": csrf_of(login), "next": "/console"})
    assert resp.status == 302, await resp.text()
    assert (await bot.http.get("/m/", params={"as": "u1"})).status == 200
    return csrf_of(await (await bot.http.get("/console/koc")).text())


async def member_csrf(bot: SandboxClient) -> str:
    return csrf_of(await (await bot.http.get("/m/")).text())


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def field_values(e: Endpoint, field: str) -> list[dict[str, Any]]:
    kind = "text" if field in e.text_fields else "integer" if field in e.integer_fields else "other"
    return [v for v in CORPUS["field_values"] if v["fields"] in ("any", kind)]


async def test_hostile_json_bodies_and_fields_are_refused(bot: SandboxClient) -> None:
    refusals, json_endpoints = Refusals(bot), [e for e in endpoints(*await ids(bot)) if e.body is not None]
    for e in json_endpoints:
        for case in CORPUS["json_bodies"]:
            await refusals.request(f"{e.path} ← {case['name']}", e.method, e.path,
                                   **json_send(bot, e, made(case["body"])))
        for field in e.fields:
            for case in field_values(e, field):
                body = e.body_with(field, made(case["json"]))
                await refusals.request(f"{e.path} {field} ← {case['name']}", e.method, e.path,
                                       **json_send(bot, e, body))
    assert refusals.problems == [], "\n".join(refusals.problems)
    for e in json_endpoints:  # the valid request is accepted: each refusal was the hostile part's doing
        resp = await bot.http.request(e.method, e.path, **json_send(bot, e, e.body_with()))
        assert resp.status < 300, (e.path, resp.status, await resp.text())


async def test_hostile_query_and_path_parameters_are_refused(bot: SandboxClient) -> None:
    refusals, csrf = Refusals(bot), await sign_in(bot)
    csrf_m = await member_csrf(bot)
    for e in endpoints(*await ids(bot)):
        if e.path.startswith("/metrics") or e.path == "/console/login":
            continue  # no parameters, or signed out only: the other tests
        send = {"headers": API} if e.path.startswith("/api/") else {}
        if e.body is not None:
            send = json_send(bot, e, e.body_with())
        if e.form is not None:
            send = {"data": {**e.form, "csrf": csrf_m if e.path.startswith("/m/") else csrf}}
        cases = [(name, v) for name in e.numbers for v in CORPUS["number_params"]]
        cases += [(name, v) for name in e.texts for v in CORPUS["text_params"]]
        cases += [(name, v) for name in e.free for v in CORPUS["text_params"] if v["control"]]
        cases += [(name, v) for name in e.dates for v in CORPUS["dates"]]
        for name, case in cases:
            await refusals.request(f"{e.path}?{name} ← {case['name']}", e.method,
                                   with_query(e.path, name, text(case["value"])), **send)
        paths = [(name, v) for name in e.path_numbers or {} for v in CORPUS["number_params"]]
        paths += [(name, v) for name in e.path_texts or {} for v in CORPUS["text_params"]]
        for name, case in paths:
            await refusals.request(f"{e.path} {{{name}}} ← {case['name']}", e.method,
                                   e.with_path(name, text(case["value"])), **send)
        for name in (n for n in e.path_texts or {} if n == "filename"):
            for case in CORPUS["static_names"]:  # as bytes: a client library would resolve "..", a server must
                await refusals.raw(f"{e.path} {{{name}}} ← {case['name']}", e.method,
                                   e.with_path(name, text(case["value"])), [])
    assert refusals.problems == [], "\n".join(refusals.problems)


async def test_hostile_forms_headers_and_callbacks_are_refused(bot: SandboxClient) -> None:
    refusals, every = Refusals(bot), endpoints(*await ids(bot))
    console_posts = [e for e in every if e.form is not None] + [Endpoint("POST", "/console/login", form={})]
    for signed_in in (False, True):
        bot.http.session.cookie_jar.clear()
        csrf = await sign_in(bot) if signed_in else csrf_of(await (await bot.http.get("/console/login")).text())
        for e in console_posts:
            for case in CORPUS["forms"]:
                body = made(case["body"]) + (f"&csrf={csrf}".encode() if "urlencoded" in case["content_type"] else b"")
                await refusals.request(f"{e.path} ({'signed in' if signed_in else 'signed out'}) ← {case['name']}",
                                       "POST", e.path, data=body, headers={"Content-Type": case["content_type"]})
    csrf = await sign_in(bot)
    for e in every:
        for name, values in CORPUS["headers"].items():
            applies = (name == "Authorization" and e.path.startswith(("/api/", "/metrics")) and "openapi" not in e.path
                       or name == "Cookie" and e.path.startswith("/console") and not e.path.startswith("/console/st"))
            for case in values if applies else []:
                body = e.body_with() if e.body is not None else urlencode({**(e.form or {}), "csrf": csrf}).encode()
                kind = b"application/json" if e.body is not None else b"application/x-www-form-urlencoded"
                await refusals.raw(f"{e.path} {name} ← {case['name']}", e.method, e.path,
                                   [(name, made(case["value"])), ("Content-Type", kind)], body if e.method == "POST"
                                   else b"")
    await bridge_headers(bot, refusals)
    await wecom_callbacks(bot, refusals)
    assert refusals.problems == [], "\n".join(refusals.problems)


async def bridge_headers(bot: SandboxClient, refusals: Refusals) -> None:
    """Each signed header of a valid bridge event replaced; the signature follows the text it signs."""
    body = Endpoint("POST", "/", {"id": "evt-h", "type": "message", "account": "brand-01", "from": "wxid_h",
                                  "text": "签到"}).body_with()
    for name, values in CORPUS["headers"].items():
        for case in values if name.startswith("X-Siyu-") else []:
            headers = {k: v.encode() for k, v in signed_headers(SECRET, body, now=bot.dispatcher.clock.now()
                                                                .timestamp()).items()}
            headers[name] = made(case["value"])
            if name != "X-Siyu-Signature":
                try:
                    parts = (headers["X-Siyu-Timestamp"].decode(), headers["X-Siyu-Nonce"].decode())
                    headers["X-Siyu-Signature"] = sign(SECRET, *parts, body).encode()
                except UnicodeDecodeError:
                    pass  # bytes that are not UTF-8 are not text to sign: the signature stays wrong
            await refusals.raw(f"/bridge/events {name} ← {case['name']}", "POST", "/bridge/events",
                               list(headers.items()), body)


async def wecom_callbacks(bot: SandboxClient, refusals: Refusals) -> None:
    """The callback's query parameters replaced one at a time (a timestamp signed as sent, so the
    replay check reads it), and hostile bodies."""
    builder = CallbackBuilder(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP)
    now = int(bot.dispatcher.clock.now().timestamp())
    path, body = builder.post(text_message("zhangsan", "签到", 1, corp_id=WECOM_CORP, at=now), timestamp=now)
    encrypt = re.search(rb"<Encrypt><!\[CDATA\[(.*?)\]\]>", body)
    assert encrypt is not None
    for method, url, data in (("GET", builder.verify_url("echo", timestamp=now), b""), ("POST", path, body)):
        query = dict(parse_qsl(urlsplit(url).query))
        for name in query:
            cases = CORPUS["text_params"] + (CORPUS["number_params"] if name == "timestamp" else [])
            for case in cases:
                changed = {**query, name: text(case["value"])}
                if name == "timestamp" and method == "POST":
                    changed["msg_signature"] = signature(WECOM_TOKEN, changed["timestamp"], changed["nonce"],
                                                         encrypt.group(1).decode())
                await refusals.request(f"{method} /wecom/callback ?{name} ← {case['name']}", method,
                                       "/wecom/callback?" + urlencode(changed), data=data)
    for case in CORPUS["wecom_bodies"]:
        await refusals.request(f"POST /wecom/callback ← {case['name']}", "POST", path, data=made(case["body"]))


async def test_the_corpus_covers_every_route(bot: SandboxClient) -> None:
    served = {(r.method, r.resource.canonical) for r in bot.app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    covered = {(e.method, e.route or e.path) for e in endpoints("1", "1", "2")}
    covered |= {("GET", "/wecom/callback"), ("POST", "/wecom/callback"), ("POST", "/console/login")}
    assert served == covered


async def test_the_api_refuses_blank_tags_as_chat_does(bot: SandboxClient) -> None:
    for tag in ("", " ", "　"):
        resp = await bot.http.post("/api/members/u1/tags", json={"add": [tag]}, headers=API)
        assert resp.status == 422 and "not only spaces" in (await resp.json())["error"]["message"], tag
    resp = await bot.http.get("/api/members/u1", headers=API)
    assert (await resp.json())["tags"] == []
