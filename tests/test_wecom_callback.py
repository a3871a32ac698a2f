"""The WeCom app callback end to end: vectors, hostile input, dedup, restarts, events."""
from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from wechatpy.crypto.base import WeChatCipher

from bot.appkeys import CHANNELS, OUTBOX
from bot.channels.wecom.crypto import signature
from bot.channels.wecom.messages import parse
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import (
    CallbackBuilder,
    FakeWeCom,
    chat_changed,
    contact_added,
    contact_deleted,
    text_message,
)
from storage.models import Group, GroupMembership, InboundUpdate, Member, MemberTag, OutboxMessage

# wecom.md §1.8 vector V1/V2: the official sample's keys.
TOKEN, AES_KEY, CORP = ("hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt",
                        "ww1436e0e65a779aee")
V2_QUERY = "msg_signature=0c3914025cb4b4d68103f6bfc8db550f79dcf48e&timestamp=1476422779&nonce=1597212914"
V2_BODY = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapSCk"
    "aOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8Sq"
    "Gc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJ"
    "IZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbv"
    "L6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
)


@pytest.fixture
def wecom_config(make_config: Callable[..., Config], fake: FakeWeCom) -> Callable[..., Config]:
    def make(**wecom: Any) -> Config:
        section = {"enabled": True, "corp_id": CORP, "agent_id": 1000002, "secret": "app-secret", "token": TOKEN,
                   "encoding_aes_key": AES_KEY, "api_base_url": fake.base_url, "replay_window_s": 0, **wecom}
        return make_config(wecom=section, operators={"admins": ["sandbox:op1", "wecom:op1"]},
                           channel_codes={"poster-2026": ["海报", "双11"]})

    return make


@pytest.fixture
async def bot(wecom_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    async with sandbox_app(wecom_config(), clock=clock) as client:
        yield client


@pytest.fixture
def callbacks() -> CallbackBuilder:
    return CallbackBuilder(TOKEN, AES_KEY, CORP, agent_id=1000002)


async def settle(bot: SandboxClient) -> None:
    """Wait for stored callbacks to be handled, then deliver what they queued."""
    assert await bot.app[CHANNELS]["wecom"].endpoint.idle(10)  # type: ignore[attr-defined]
    await bot.deliver()


async def post(bot: SandboxClient, path: str, body: bytes) -> tuple[int, str]:
    resp = await bot.http.post(path, data=body, headers={"Content-Type": "text/xml"})
    return resp.status, await resp.text()


async def count(bot: SandboxClient, model: Any, *where: Any) -> int:
    async with bot.db.read() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


# -- the vectors of wecom.md §1.8 --------------------------------------------------------------

async def test_v1_url_verification_answers_the_decrypted_echo(bot: SandboxClient) -> None:
    query = ("msg_signature=012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb&timestamp=1476416373&nonce=47744683&echostr="
             "fsi1xnbH4yQh0%2BPJxcOdhhK6TDXkjMyhEPA7xB2TGz6b%2Bg7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA%3D%3D")
    resp = await bot.http.get("/wecom/callback?" + query)
    assert resp.status == 200 and await resp.text() == "1288432023552776189"
    # A raw '+' arrives as a space: tolerated (wecom.md §1.1).
    resp = await bot.http.get("/wecom/callback?" + query.replace("%2B", "+"))
    assert resp.status == 200 and await resp.text() == "1288432023552776189"
    resp = await bot.http.get("/wecom/callback?" + query.replace("012bc692", "112bc692"))
    assert resp.status == 403


async def test_v2_encrypted_text_is_stored_answered_empty_and_handled(bot: SandboxClient, fake: FakeWeCom) -> None:
    status, body = await post(bot, "/wecom/callback?" + V2_QUERY, V2_BODY.encode())
    assert (status, body) == (200, "")
    await settle(bot)
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == "ChenJiaShun"))).scalar_one()
        row = (await s.execute(select(InboundUpdate).where(InboundUpdate.key == "wecom:msg:1456453720"))).scalar_one()
    assert member.channel == "wecom" and member.message_count == 1
    assert row.handled_at is not None and "你好" in (row.payload or "")
    # "你好" from an internal member: the fallback answers through message/send.
    [sent] = fake.calls("message/send")
    assert sent.body is not None and sent.body["touser"] == "ChenJiaShun" and sent.body["agentid"] == 1000002


async def test_v5_wechatpy_vector_through_the_endpoint(make_config: Callable[..., Config], clock: FakeClock) -> None:
    config = make_config(wecom={
        "enabled": True, "corp_id": "wx49f0ab532d5d035a", "agent_id": 1, "secret": "s", "token": "123456",
        "encoding_aes_key": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "replay_window_s": 0,
        "api_base_url": "http://127.0.0.1:9/cgi-bin/",
    })
    encrypt = ("RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283"
               "dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nP"
               "wBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/"
               "54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNW"
               "Hp91eBdCRxthuL0=")
    query = "msg_signature=74d92dfeb87ba7c714f89d98870ae5eb62dff26d&timestamp=1411525903&nonce=461056294"
    async with sandbox_app(config, clock=clock) as bot:
        channel = bot.app[CHANNELS]["wecom"]
        channel.endpoint.offer = lambda message: None  # type: ignore[attr-defined,method-assign]  # store only
        status, _ = await post(bot, "/wecom/callback?" + query,
                               f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode())
        assert status == 200
        async with bot.db.read() as s:
            row = (await s.execute(select(InboundUpdate))).scalar_one()
    assert row.key == "wecom:msg:4363689963896700987"
    assert "<FromUserName><![CDATA[messense]]></FromUserName>" in (row.payload or "")


# -- hostile input ------------------------------------------------------------------------------

def _encrypt_raw(plain: bytes) -> str:
    """AES-CBC with the app's key over bytes we choose (for bad padding and lengths)."""
    key = base64.b64decode(AES_KEY + "=")
    return base64.b64encode(WeChatCipher(key).encrypt(plain)).decode()


def _signed(encrypt: str, ts: str = "1476422779", nonce: str = "42") -> tuple[str, bytes]:
    sig = signature(TOKEN, ts, nonce, encrypt)
    body = f"<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode()
    return f"/wecom/callback?msg_signature={sig}&timestamp={ts}&nonce={nonce}", body


async def test_hostile_callbacks_are_refused_and_nothing_is_stored(
    bot: SandboxClient, callbacks: CallbackBuilder,
) -> None:
    good_path, good_body = callbacks.post(text_message("op1", "hi", 1, corp_id=CORP))
    inner = (b"<xml><MsgType>text</MsgType><Content>x</Content><MsgId>9</MsgId>"
             b"<FromUserName>a</FromUserName><CreateTime>1</CreateTime></xml>")
    framed = b"0123456789abcdef" + len(inner).to_bytes(4, "big") + inner + CORP.encode()
    pad32 = 32 - len(framed) % 32
    bomb = ('<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            "<xml><MsgType>text</MsgType><Content>&b;</Content><MsgId>1</MsgId></xml>")
    other_receiver = CallbackBuilder(TOKEN, AES_KEY, "ww-someone-else").post(text_message("op1", "hi", 2))
    cases: list[tuple[str, str, bytes, int]] = [
        ("wrong signature", good_path.replace("msg_signature=", "msg_signature=0"), good_body, 403),
        ("missing signature", good_path.split("?")[0] + "?timestamp=1&nonce=2", good_body, 400),
        ("malformed outer XML", good_path, b"<xml><Encrypt>", 400),
        ("no Encrypt", good_path, b"<xml><ToUserName>x</ToUserName></xml>", 400),
        ("XXE in the envelope", good_path,
         b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>', 400),
        ("entity bomb inside", *callbacks.post(bomb), 400),
        ("wrong receive id", *other_receiver, 400),
        ("bad base64", *_signed("not*base64!"), 400),
        ("pad byte 0", *_signed(_encrypt_raw(framed + bytes(pad32 - 1) + b"\x00")), 400),
        ("pad byte 40", *_signed(_encrypt_raw(framed[: len(framed) - len(framed) % 16] + bytes([40]) * 16)), 400),
        ("length beyond payload",
         *_signed(_encrypt_raw(b"0123456789abcdef" + (10_000).to_bytes(4, "big") + b"x" * 12)), 400),
        ("oversized body", good_path, b"<xml><Encrypt>" + b"A" * (1024 * 1024 + 10) + b"</Encrypt></xml>", 400),
    ]
    for name, path, body, expected in cases:
        status, text = await post(bot, path, body)
        assert status == expected, (name, status, text)
        assert "Traceback" not in text and "error" in text, name
    assert await count(bot, InboundUpdate) == 0
    # The well-formed one still goes through.
    assert (await post(bot, good_path, good_body))[0] == 200


async def test_stale_timestamps_are_refused_within_the_replay_window(
    wecom_config: Callable[..., Config], clock: FakeClock, callbacks: CallbackBuilder,
) -> None:
    async with sandbox_app(wecom_config(replay_window_s=300), clock=clock) as bot:
        now = int(clock.now().timestamp())
        status, text = await post(bot, *callbacks.post(text_message("op1", "hi", 7, corp_id=CORP), timestamp=now - 301))
        assert status == 400 and "replay window" in text
        assert (await post(bot, *callbacks.post(text_message("op1", "hi", 8, corp_id=CORP),
                                                timestamp=now - 10)))[0] == 200


# -- nothing lost, nothing twice ------------------------------------------------------------------

async def test_three_identical_retries_are_handled_once(
    bot: SandboxClient, fake: FakeWeCom, callbacks: CallbackBuilder,
) -> None:
    path, body = callbacks.post(text_message("op1", "/help", 555, corp_id=CORP))
    statuses = [(await post(bot, path, body))[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    await settle(bot)
    assert await count(bot, InboundUpdate) == 1
    assert len(fake.calls("message/send")) == 1
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == "op1"))).scalar_one()
    assert member.message_count == 1


async def test_a_callback_stored_before_a_crash_is_handled_after_restart(
    wecom_config: Callable[..., Config], clock: FakeClock, fake: FakeWeCom, callbacks: CallbackBuilder,
) -> None:
    path, body = callbacks.post(text_message("op1", "/help", 777, corp_id=CORP))
    async with sandbox_app(wecom_config(), clock=clock) as first:
        # The process dies right after answering: it stored the row and handled nothing.
        first.app[CHANNELS]["wecom"].endpoint.offer = lambda message: None  # type: ignore[attr-defined,method-assign]
        assert (await post(first, path, body))[0] == 200
        assert await count(first, InboundUpdate, InboundUpdate.handled_at.is_(None)) == 1
    assert fake.calls("message/send") == []
    async with sandbox_app(wecom_config(), clock=clock) as second:
        await settle(second)  # start-up offered what the first process stored
        assert await count(second, InboundUpdate, InboundUpdate.handled_at.is_(None)) == 0
        # And a WeCom retry of the same callback after the restart is not handled again.
        assert (await post(second, path, body))[0] == 200
        await settle(second)
    assert len(fake.calls("message/send")) == 1


# -- events -------------------------------------------------------------------------------------------

async def test_new_contact_is_tagged_and_welcomed_within_the_deadline(
    bot: SandboxClient, fake: FakeWeCom, callbacks: CallbackBuilder,
) -> None:
    started = time.monotonic()
    path, body = callbacks.post(contact_added("wmCustomer1", "staff1", state="poster-2026", welcome_code="CODE-1"))
    assert (await post(bot, path, body))[0] == 200
    for _ in range(400):  # the worker delivers on its own: no test-side push
        if fake.calls("externalcontact/send_welcome_msg"):
            break
        await asyncio.sleep(0.005)
    [welcome] = fake.calls("externalcontact/send_welcome_msg")
    assert welcome.at - started < 2.0  # well inside WeCom's 20 s
    assert welcome.body is not None and welcome.body["welcome_code"] == "CODE-1"
    assert "添加品牌助手" in welcome.body["text"]["content"]
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == "wmCustomer1"))).scalar_one()
        tags = (await s.execute(select(MemberTag.tag).where(MemberTag.member_id == member.id))).scalars().all()
    assert member.channel_code == "poster-2026" and member.status == "active"
    assert sorted(tags) == ["双11", "海报"]


async def test_an_expired_welcome_code_is_not_sent_and_the_reason_is_kept(
    wecom_config: Callable[..., Config], clock: FakeClock, fake: FakeWeCom, callbacks: CallbackBuilder,
) -> None:
    async with sandbox_app(wecom_config(), clock=clock) as bot:
        channel = bot.app[CHANNELS]["wecom"]
        path, body = callbacks.post(contact_added("wmLate", "staff1", welcome_code="CODE-LATE",
                                                  at=int(clock.now().timestamp())))
        await bot.app[OUTBOX].stop()  # the delivery worker is down for a while...
        assert (await post(bot, path, body))[0] == 200
        assert await channel.endpoint.idle(10)
        clock.advance(25)  # ...longer than the code lives
        await bot.deliver()
        async with bot.db.read() as s:
            row = (await s.execute(select(OutboxMessage).where(OutboxMessage.kind == "welcome"))).scalar_one()
    assert fake.calls("externalcontact/send_welcome_msg") == []
    assert row.status == "failed" and "expired" in (row.last_error or "")


async def test_deleted_contacts_are_marked_lost(bot: SandboxClient, callbacks: CallbackBuilder) -> None:
    await post(bot, *callbacks.post(contact_added("wmGone", "staff1", at=1_700_000_000)))
    await post(bot, *callbacks.post(contact_deleted("wmGone", "staff1", at=1_700_000_100)))
    await settle(bot)
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == "wmGone"))).scalar_one()
    assert member.status == "lost"


async def test_operator_commands_arrive_as_app_messages(
    bot: SandboxClient, fake: FakeWeCom, callbacks: CallbackBuilder,
) -> None:
    await post(bot, *callbacks.post(text_message("op1", "/help", 9001, corp_id=CORP)))
    await settle(bot)
    [sent] = fake.calls("message/send")
    assert sent.body is not None and sent.body["touser"] == "op1" and "/help" in sent.body["text"]["content"]


async def test_group_membership_through_events_with_a_missed_one(
    bot: SandboxClient, fake: FakeWeCom, callbacks: CallbackBuilder,
) -> None:
    chat = "wrGroup1"
    fake.add_group(chat, owner="owner1", members=["owner1", "wmA"], name="新品体验群", version="v1")
    await post(bot, *callbacks.post(chat_changed(chat, "create", at=1_700_000_000)))
    await settle(bot)
    assert await _members(bot, chat) == {"owner1", "wmA"}  # read from groupchat/get

    # In order: B joins (v1 → v2). No re-read needed.
    fake.groups[chat].members.append("wmB")
    fake.groups[chat].member_version = "v2"
    reads = len(fake.calls("externalcontact/groupchat/get"))
    await post(bot, *callbacks.post(chat_changed(chat, "update", detail="add_member", members=["wmB"],
                                                 last_version="v1", current_version="v2", at=1_700_000_010)))
    await settle(bot)
    assert await _members(bot, chat) == {"owner1", "wmA", "wmB"}
    assert len(fake.calls("externalcontact/groupchat/get")) == reads

    # Missed: C joined (v2 → v3) and A left (v3 → v4), but only the second event arrives.
    fake.groups[chat].members = ["owner1", "wmB", "wmC"]
    fake.groups[chat].member_version = "v4"
    await post(bot, *callbacks.post(chat_changed(chat, "update", detail="del_member", members=["wmA"],
                                                 last_version="v3", current_version="v4", at=1_700_000_030)))
    await settle(bot)
    assert await _members(bot, chat) == {"owner1", "wmB", "wmC"}
    assert len(fake.calls("externalcontact/groupchat/get")) == reads + 1
    async with bot.db.read() as s:
        group = (await s.execute(select(Group).where(Group.external_id == chat))).scalar_one()
    assert (group.owner, group.member_version, group.name) == ("owner1", "v4", "新品体验群")

    # Dismissed.
    await post(bot, *callbacks.post(chat_changed(chat, "dismiss", at=1_700_000_040)))
    await settle(bot)
    async with bot.db.read() as s:
        assert (await s.execute(select(Group.status).where(Group.external_id == chat))).scalar_one() == "dismissed"


async def test_a_group_join_welcome_becomes_a_task_for_the_owner(
    bot: SandboxClient, fake: FakeWeCom, callbacks: CallbackBuilder,
) -> None:
    chat = "wrGroup2"
    fake.add_group(chat, owner="owner2", members=["owner2"], version="v1")
    await post(bot, *callbacks.post(chat_changed(chat, "create", at=1_700_000_000)))
    await settle(bot)
    fake.groups[chat].members.append("wmNew")
    fake.groups[chat].member_version = "v2"
    await post(bot, *callbacks.post(chat_changed(chat, "update", detail="add_member", members=["wmNew"],
                                                 last_version="v1", current_version="v2", at=1_700_000_010)))
    await settle(bot)
    [task] = fake.calls("externalcontact/add_msg_template")
    assert task.body is not None and task.body["chat_type"] == "group"
    assert task.body["sender"] == "owner2" and task.body["chat_id_list"] == [chat]
    async with bot.db.read() as s:
        row = (await s.execute(select(OutboxMessage).where(OutboxMessage.chat == chat))).scalar_one()
    # Nothing was sent yet: it waits for the owner, and says so.
    assert row.status == "awaiting_owner" and row.meta["owner"] == "owner2" and row.meta["msgid"]


async def _members(bot: SandboxClient, chat: str) -> set[str]:
    async with bot.db.read() as s:
        rows = await s.execute(
            select(Member.external_id).join(GroupMembership, GroupMembership.member_id == Member.id)
            .join(Group, Group.id == GroupMembership.group_id)
            .where(Group.external_id == chat, GroupMembership.left_at.is_(None))
        )
        return set(rows.scalars())


# Real-world payloads: wechatpy's parser tests (MIT: tests/fixtures/wechatpy-LICENSE.txt).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "wecom_work_payloads.json"


async def test_real_world_payloads_are_all_accepted_and_handled(bot: SandboxClient, callbacks: CallbackBuilder) -> None:
    payloads = json.loads(FIXTURES.read_text(encoding="utf-8"))["payloads"]
    assert len(payloads) >= 18
    for payload in payloads:
        status, text = await post(bot, *callbacks.post(payload["xml"]))
        assert (status, text) == (200, ""), payload["name"]
    await settle(bot)
    # One row per dedup key (wechatpy's samples reuse one MsgId across message types, and a
    # repeated MsgId is a retry), each closed, whatever its type (most have no handler: fine).
    keys = {parse(p["xml"].encode()).key for p in payloads}
    assert await count(bot, InboundUpdate, InboundUpdate.channel == "wecom") == len(keys)
    assert await count(bot, InboundUpdate, InboundUpdate.handled_at.is_(None)) == 0
    assert await count(bot, InboundUpdate, InboundUpdate.error.is_not(None)) == 0
