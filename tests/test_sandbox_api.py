"""The sandbox endpoints end to end, as a newcomer and a developer would use them."""
from __future__ import annotations

import json

from bot.testing import SandboxClient


async def test_healthz_reports_ok_once_the_database_answers(bot: SandboxClient) -> None:
    resp = await bot.http.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_the_address_siyu_run_prints_opens_the_sandbox_page(bot: SandboxClient) -> None:
    resp = await bot.http.get("/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/sandbox"
    page = await bot.http.get("/")
    assert page.status == 200 and "会员中心" in await page.text()


async def test_member_joining_a_group_is_welcomed_there_by_name(bot: SandboxClient) -> None:
    replies = await bot.event("member_joined", "u1", chat="g1", name="小王")
    assert len(replies) == 1
    assert replies[0]["chat"] == "g1" and replies[0]["to"] is None
    assert "小王" in replies[0]["text"] and "欢迎" in replies[0]["text"]
    # The welcome is a real outbox row: the group's outbox shows it once delivered.
    outbox = await bot.outbox(chat="g1")
    assert [m["id"] for m in outbox] == [replies[0]["id"]]
    assert outbox[0]["text"] == replies[0]["text"]


async def test_a_repeated_join_event_does_not_welcome_twice(bot: SandboxClient) -> None:
    assert len(await bot.event("member_joined", "u1", chat="g1", name="小王")) == 1
    assert await bot.event("member_joined", "u1", chat="g1", name="小王") == []
    await bot.event("member_left", "u1", chat="g1")
    assert len(await bot.event("member_joined", "u1", chat="g1")) == 1  # a real rejoin


async def test_welcome_text_comes_from_config(make_config, clock) -> None:  # type: ignore[no-untyped-def]
    from bot.testing import sandbox_app

    config = make_config(texts={"welcome_group": "{name}，欢迎来到{group}！"})
    async with sandbox_app(config, clock=clock) as bot:
        replies = await bot.event("member_joined", "u9", chat="g1", name="阿花")
    assert replies[0]["text"] == "阿花，欢迎来到本群！"


async def test_help_lists_what_the_sender_may_use(bot: SandboxClient) -> None:
    replies = await bot.say("u1", "/help")
    assert len(replies) == 1 and replies[0]["to"] == "u1" and replies[0]["chat"] is None
    assert "/help" in replies[0]["text"]
    # In a group, /help answers in the group.
    group_replies = await bot.say("u1", "/help", chat="g1")
    assert group_replies[0]["chat"] == "g1" and "/help" in group_replies[0]["text"]


async def test_one_to_one_chatter_gets_a_friendly_fallback(bot: SandboxClient) -> None:
    replies = await bot.say("u2", "在吗？", name="小李")
    assert len(replies) == 1
    assert "小李" in replies[0]["text"] and "/help" in replies[0]["text"]


async def test_group_chatter_is_not_answered(bot: SandboxClient) -> None:
    assert await bot.say("u2", "大家早上好", chat="g1") == []


async def test_unknown_command_suggests_the_closest(bot: SandboxClient) -> None:
    replies = await bot.say("u1", "/hlep")
    assert "/hlep" in replies[0]["text"] and "/help" in replies[0]["text"]


async def test_new_contact_gets_a_one_to_one_welcome_and_channel_code_is_kept(bot: SandboxClient) -> None:
    from sqlalchemy import select

    from storage.models import Member

    replies = await bot.event("contact_added", "c1", state="poster-2026", name="阿强")
    assert replies[0]["to"] == "c1" and "阿强" in replies[0]["text"]
    await bot.event("contact_added", "c1", state="another-code")
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == "c1"))).scalar_one()
    assert member.channel_code == "poster-2026"  # the first channel code is the one that counts


async def test_outbox_filters_by_chat_member_and_since(bot: SandboxClient) -> None:
    await bot.event("member_joined", "u1", chat="g1", name="甲")
    await bot.event("member_joined", "u2", chat="g2", name="乙")
    private = await bot.say("u3", "你好")
    g1 = await bot.outbox(chat="g1")
    assert len(g1) == 1 and g1[0]["chat"] == "g1" and "甲" in g1[0]["text"]
    to_u3 = await bot.outbox(to="u3")
    assert [m["id"] for m in to_u3] == [private[0]["id"]]
    everything = await bot.outbox()
    assert [m["seq"] for m in everything] == sorted(m["seq"] for m in everything) and len(everything) == 3
    assert await bot.outbox(since=everything[-1]["seq"]) == []
    assert [m["id"] for m in await bot.outbox(since=everything[0]["seq"])] == [m["id"] for m in everything[1:]]


async def test_a_retried_message_is_handled_once_and_gets_the_same_answer(bot: SandboxClient) -> None:
    from sqlalchemy import select

    from storage.models import Member

    first = await bot.say("u1", "你好", id="client-msg-1")
    again = await bot.say("u1", "你好", id="client-msg-1")
    assert again == first
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == "u1"))).scalar_one()
    assert member.message_count == 1


async def test_group_activity_is_counted(bot: SandboxClient) -> None:
    from sqlalchemy import select

    from storage.models import Group, GroupMembership, Member

    for text in ("早", "今天有活动吗", "好的"):
        await bot.say("u1", text, chat="g1")
    await bot.say("u2", "收到", chat="g1")
    async with bot.db.read() as s:
        group = (await s.execute(select(Group).where(Group.external_id == "g1"))).scalar_one()
        u1 = (await s.execute(select(Member).where(Member.external_id == "u1"))).scalar_one()
        membership = (await s.execute(select(GroupMembership).where(
            GroupMembership.group_id == group.id, GroupMembership.member_id == u1.id))).scalar_one()
    assert group.message_count == 4
    assert u1.message_count == 3 and membership.message_count == 3
    assert membership.left_at is None and membership.last_spoke_at is not None


async def test_sandbox_page_is_served_without_external_resources(bot: SandboxClient) -> None:
    resp = await bot.http.get("/sandbox")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert "/sandbox/messages" in html and "/sandbox/outbox" in html
    assert "http://" not in html and "https://" not in html  # works offline: no CDN


# -- hostile input ---------------------------------------------------------------------------

async def _post_raw(bot: SandboxClient, path: str, body: bytes) -> tuple[int, dict]:
    resp = await bot.http.post(path, data=body, headers={"Content-Type": "application/json"})
    return resp.status, await resp.json()


async def test_malformed_json_is_a_400_naming_the_problem(bot: SandboxClient) -> None:
    status, data = await _post_raw(bot, "/sandbox/messages", b'{"from": "u1", "text": ')
    assert status == 400 and "JSON" in data["error"]
    status, data = await _post_raw(bot, "/sandbox/messages", b"\xff\xfe")
    assert status == 400 and "JSON" in data["error"]
    status, data = await _post_raw(bot, "/sandbox/messages", b'["u1", "hi"]')
    assert status == 400 and "object" in data["error"]


async def test_missing_and_mistyped_fields_are_named(bot: SandboxClient) -> None:
    cases = [
        ({"text": "hi"}, "'from' is required"),
        ({"from": "u1"}, "'text' is required"),
        ({"from": 42, "text": "hi"}, "'from'"),
        ({"from": "u1", "text": ["hi"]}, "'text'"),
        ({"from": "u1", "text": "hi", "chat": 7}, "'chat'"),
        ({"from": "u1", "text": ""}, "'text'"),
        ({"from": "u1", "text": "hi", "colour": "red"}, "unknown field 'colour'"),
        ({"from": "u\n1", "text": "hi"}, "control characters"),
    ]
    for body, expected in cases:
        status, data = await _post_raw(bot, "/sandbox/messages", json.dumps(body).encode())
        assert status == 400, body
        assert expected in data["error"], (body, data)


async def test_text_over_4000_characters_is_refused(bot: SandboxClient) -> None:
    ok = await bot.say("u1", "好" * 4000)
    assert len(ok) == 1
    status, data = await _post_raw(bot, "/sandbox/messages", json.dumps({"from": "u1", "text": "好" * 4001}).encode())
    assert status == 400 and "'text'" in data["error"] and "4000" in data["error"]


async def test_body_over_one_megabyte_is_refused(bot: SandboxClient) -> None:
    huge = json.dumps({"from": "u1", "text": "x" * (1024 * 1024)}).encode()
    status, data = await _post_raw(bot, "/sandbox/messages", huge)
    assert status == 400 and "bytes" in data["error"]

    async def chunks():  # no Content-Length: the cap must hold on the stream too
        for _ in range(20):
            yield b"x" * 100_000

    resp = await bot.http.post("/sandbox/messages", data=chunks())
    assert resp.status == 400 and "bytes" in (await resp.json())["error"]


async def test_bad_events_are_400(bot: SandboxClient) -> None:
    cases = [
        ({"type": "exploded", "user": "u1"}, "'type'"),
        ({"type": "member_joined", "user": "u1"}, "'chat' is required"),
        ({"type": "contact_added", "user": "u1", "chat": "g1"}, "'chat' must be absent"),
        ({"type": "member_left"}, "'user' is required"),
    ]
    for body, expected in cases:
        status, data = await _post_raw(bot, "/sandbox/events", json.dumps(body).encode())
        assert status == 400 and expected in data["error"], (body, data)


async def test_bad_outbox_queries_are_400(bot: SandboxClient) -> None:
    for query, expected in [("since=abc", "'since'"), ("since=-1", "'since'"), ("limit=0", "'limit'"),
                            ("colour=red", "colour")]:
        resp = await bot.http.get(f"/sandbox/outbox?{query}")
        assert resp.status == 400 and expected in (await resp.json())["error"]


async def test_unknown_paths_and_methods_are_json_4xx(bot: SandboxClient) -> None:
    resp = await bot.http.get("/nope")
    assert resp.status == 404 and "error" in await resp.json()
    resp = await bot.http.get("/sandbox/messages")
    assert resp.status == 405 and "error" in await resp.json()


async def test_sandbox_can_be_switched_off(make_config, clock) -> None:  # type: ignore[no-untyped-def]
    from bot.testing import sandbox_app

    async with sandbox_app(make_config(sandbox={"enabled": False}), clock=clock) as bot:
        resp = await bot.http.post("/sandbox/messages", json={"from": "u1", "text": "hi"})
        assert resp.status == 404
        assert (await bot.http.get("/healthz")).status == 200
