"""微信客服: WeChat users one-to-one through kf_msg_or_event → kf/sync_msg → the dispatcher, and
replies through kf/send_msg within the 48 h / 5 messages window."""
from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import pytest
from conftest import WECOM_AES_KEY as AES_KEY
from conftest import WECOM_CORP as CORP
from conftest import WECOM_TOKEN as TOKEN
from conftest import wecom_section
from sqlalchemy import select

from bot.appkeys import CHANNELS
from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, kf_event
from storage.models import KocApplication, OutboxMessage

KF = "wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyJTw"
_tokens = itertools.count(1)


@pytest.fixture(autouse=True)
def fake_on_our_clock(fake: FakeWeCom, clock: FakeClock) -> None:
    """Users write at the test's time (send_time), which dates their window."""
    fake.now = lambda: clock.now().timestamp()


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    wecom = wecom_section(fake.base_url, kf=True)
    config = make_config(wecom=wecom, operators={"admins": ["sandbox:op1", "wecom:op1"]})
    async with sandbox_app(config, clock=clock) as client:
        await user_says(client, fake)  # the account's first pull: siyu takes its cursor
        yield client


async def callback(bot: SandboxClient, *events: str) -> None:
    """WeCom calls back with each event (all posted before any is handled)."""
    for event in events:
        path, body = CallbackBuilder(TOKEN, AES_KEY, CORP).post(event)
        resp = await bot.http.post(path, data=body, headers={"Content-Type": "text/xml"})
        assert resp.status == 200
    assert await bot.app[CHANNELS]["wecom"].endpoint.idle(10)  # type: ignore[attr-defined]
    await bot.deliver()


async def user_says(bot: SandboxClient, fake: FakeWeCom, *texts: str, user: str = "wmUser1", kf: str = KF) -> None:
    """The user writes; WeCom calls back; siyu pulls, handles and replies."""
    for text in texts:
        fake.kf_user_says(kf, user, text)
    await callback(bot, kf_event(kf, f"tok{next(_tokens)}", corp_id=CORP))


async def test_sign_in_and_a_koc_screening_over_kf(bot: SandboxClient, fake: FakeWeCom) -> None:
    await user_says(bot, fake, "签到")
    assert fake.kf_to("wmUser1")[-1].startswith("签到成功！+10 积分")
    assert fake.calls("kf/send_msg")[-1].body["open_kfid"] == KF
    await user_says(bot, fake, "申请KOC")
    for answer in ("1", "保湿面霜", "1", "1 2", "3000", "2", "5"):
        await user_says(bot, fake, answer)
    assert fake.kf_to("wmUser1")[-1] == ("提交成功！你的初评是「内容官」。"
                                         "运营同学会在 3 个工作日内审核，结果会第一时间告诉你～")
    async with bot.db.read() as s:
        application = (await s.execute(select(KocApplication))).scalar_one()
    assert application.recommended_type == "内容官" and application.status == "pending"


async def test_a_rejected_cursor_is_retried_and_nothing_is_handled_twice(bot: SandboxClient, fake: FakeWeCom) -> None:
    await user_says(bot, fake, "签到")  # the cursor is now past that message
    async with bot.db.read() as s:
        from storage import kf

        cursor = await kf.cursor(s, KF)
    assert cursor and not cursor.isdigit()  # WeCom's cursors are opaque strings, kept as they come
    fake.kf_bad_cursors.add(cursor)  # WeCom refuses it once: the pull fails, the cursor stays
    await user_says(bot, fake, "积分")
    assert len(fake.kf_to("wmUser1")) == 1
    fake.kf_bad_cursors.clear()
    await user_says(bot, fake, "等级")  # pulled from the last good cursor: both messages, in order
    assert [t[:4] for t in fake.kf_to("wmUser1")] == ["签到成功", "你现在有", "你现在是"]
    async with bot.db.transaction() as s:  # even a pull from the very start handles nothing twice
        await kf.save_cursor(s, KF, "", now=bot.dispatcher.clock.now())
    await user_says(bot, fake)
    assert len(fake.kf_to("wmUser1")) == 3


async def test_the_48_hour_window_holds_what_would_break_it(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    await user_says(bot, fake, "签到")  # one reply: 4 left in this window
    for n in range(5):  # an operator grants points: each tells the member
        await bot.say("op1", f"/points grant wmUser1 {n + 1} 活动奖励")
    await bot.deliver()
    assert len(fake.kf_to("wmUser1")) == 5
    async with bot.db.read() as s:
        held = (await s.execute(select(OutboxMessage).where(OutboxMessage.status == "held"))).scalars().all()
    assert len(held) == 1 and "5 messages already sent" in (held[0].last_error or "")
    clock.advance(hours=49)
    await user_says(bot, fake, "你好")  # they write again: the held message goes, with the reply
    texts = fake.kf_to("wmUser1")
    assert len(texts) == 7 and any("5 积分" in t for t in texts[5:])


async def test_choices_go_as_a_menu_and_a_tap_is_the_answer(bot: SandboxClient, fake: FakeWeCom) -> None:
    await user_says(bot, fake, "申请KOC")
    sent = fake.calls("kf/send_msg")[-1].body
    assert sent["msgtype"] == "msgmenu"
    options = [o["click"]["content"] for o in sent["msgmenu"]["list"]]
    assert options[:2] == ["买过/用过", "还没有"]
    fake.kf_user_taps(KF, "wmUser1", "买过/用过", "1")
    await user_says(bot, fake)  # the callback for the tap
    assert "产品" in fake.kf_to("wmUser1")[-1]  # the next question: which product


async def test_redemption_over_kf(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> None:
    wecom = wecom_section(fake.base_url, kf=True)
    config = make_config(wecom=wecom, signin={"daily_points": 100}).model_copy(update={
        "rewards": SiyuConfig.model_validate({"rewards": [{"name": "小样", "cost": 50, "stock": 3}]}).rewards})
    async with sandbox_app(config, clock=clock) as bot:
        await user_says(bot, fake)
        await user_says(bot, fake, "签到", "兑换 1")
        assert "需要 50 积分，你现在有 100 积分" in fake.kf_to("wmUser1")[-1]
        await user_says(bot, fake, "确认")
        assert fake.kf_to("wmUser1")[-1].startswith("兑换成功！「小样」已为你预留")


async def test_a_message_to_a_customer_contact_goes_through_kf(bot: SandboxClient, fake: FakeWeCom) -> None:
    """The WeCom app cannot write to a customer one-to-one; with 微信客服 on, the outbox sends
    a message for the customer (an external contact, wm...) that way, within its window."""
    await user_says(bot, fake, "你好")
    async with bot.db.transaction() as s:
        from storage import outbox

        await outbox.enqueue(s, [outbox.Outgoing("wecom", "你的会员卡已激活", to="wmUser1")],
                             now=bot.dispatcher.clock.now())
    await bot.deliver()
    assert fake.kf_to("wmUser1")[-1] == "你的会员卡已激活"


async def test_onboarding_over_kf(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> None:
    wecom = wecom_section(fake.base_url, kf=True)
    config = make_config(wecom=wecom, onboarding={"start_on": ["first_message"]})
    async with sandbox_app(config, clock=clock) as bot:
        await user_says(bot, fake)
        await user_says(bot, fake, "你好")
        city = fake.calls("kf/send_msg")[-1].body
        assert city["msgtype"] == "msgmenu" and city["msgmenu"]["head_content"].endswith("\n你在哪个城市？")
        fake.kf_user_taps(KF, "wmUser1", "上海", "2")
        await user_says(bot, fake, "30", "朋友推荐")
        fake.kf_user_taps(KF, "wmUser1", "可以", "1")
        await user_says(bot, fake)
        assert fake.kf_to("wmUser1")[-1].startswith("谢谢你")
        async with bot.db.read() as s:
            from storage.models import Member

            member = (await s.execute(select(Member).where(Member.channel == "wecom_kf"))).scalar_one()
        assert {k: member.attributes[k] for k in ("city", "age", "source", "consent")} == {
            "city": "上海", "age": 30, "source": "朋友推荐", "consent": True}


# -- never a dropped message (issue 18) ---------------------------------------------------------

KF2 = "wkSecondAccountBBBBBBBBBBBBBBBBBB"


async def test_two_callbacks_in_one_second_are_both_handled(bot: SandboxClient, fake: FakeWeCom) -> None:
    """A real kf_msg_or_event has no FromUserName: two accounts' callbacks of the same second
    differ only in Token and OpenKfId, and each must be pulled."""
    await user_says(bot, fake, kf=KF2)  # the second account's first pull
    fake.kf_user_says(KF, "wmUser1", "签到")
    fake.kf_user_says(KF2, "wmUser2", "签到")
    second = 1_795_400_000
    await callback(bot, kf_event(KF, "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR", corp_id=CORP, at=second),
                   kf_event(KF2, "ENCBpWs8oLkGB7a3j5UqeE3FZcJpLR7HgxMfSvEDr9Y2vNE", corp_id=CORP, at=second))
    assert fake.kf_to("wmUser1")[-1].startswith("签到成功")
    assert fake.kf_to("wmUser2")[-1].startswith("签到成功")


async def test_history_is_not_replayed_on_the_first_pull(
    make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock,
) -> None:
    """A brand turns 微信客服 on: the first pull returns up to 3 days of history, which nobody
    answers out of the blue; what users write afterwards is answered."""
    now = int(clock.now().timestamp())
    fake.kf_user_says(KF, "wmOld", "签到", at=now - 2 * 86400)
    fake.kf_user_says(KF, "wmOld", "申请KOC", at=now - 86400)
    config = make_config(wecom=wecom_section(fake.base_url, kf=True))
    async with sandbox_app(config, clock=clock) as bot:
        await user_says(bot, fake)
        assert fake.kf_sent == []
        await user_says(bot, fake, "积分", user="wmOld")
        assert [t[:4] for t in fake.kf_to("wmOld")] == ["你现在有"]  # no sign-in, no screening from history


async def test_history_opens_no_fresh_window(make_config: Callable[..., Config], fake: FakeWeCom,
                                             clock: FakeClock) -> None:
    """The window runs from the user's own message: one written 50 h ago and pulled now leaves
    nothing to send until they write again."""
    fake.kf_user_says(KF, "wmOld", "你好", at=int(clock.now().timestamp()) - 50 * 3600)
    config = make_config(wecom=wecom_section(fake.base_url, kf=True, kf_replay_history=True))
    async with sandbox_app(config, clock=clock) as bot:
        await user_says(bot, fake)  # pulled (and answered: replay on), but the window is long closed
        async with bot.db.read() as s:
            held = (await s.execute(select(OutboxMessage).where(OutboxMessage.to == "wmOld"))).scalars().all()
        assert fake.kf_sent == [] and {m.status for m in held} == {"held"}
        assert "48 h window" in (held[0].last_error or "")


async def test_an_oversized_menu_goes_as_a_text_question(bot: SandboxClient, fake: FakeWeCom) -> None:
    await user_says(bot, fake, "你好")
    long_question = "请仔细阅读以下活动规则后作答。" * 30 + "\n你愿意参加吗？"  # 1,400 bytes: > a menu head, < a text
    long_option = "愿意，并且" + "我会邀请朋友一起来" * 6  # > 128 bytes: no menu item can hold it
    async with bot.db.transaction() as s:
        from storage import outbox

        await outbox.enqueue(s, [outbox.Outgoing("wecom_kf", f"{long_question}\n1 愿意  2 不愿意", to="wmUser1"),
                                 outbox.Outgoing("wecom_kf", f"你会来吗？\n1 {long_option}  2 不会", to="wmUser1"),
                                 outbox.Outgoing("wecom_kf", "你会来吗？\n1 会  2 不会", to="wmUser1")],
                             now=bot.dispatcher.clock.now())
    await bot.deliver()
    sent = [c.body for c in fake.calls("kf/send_msg")[-3:]]
    assert [b["msgtype"] for b in sent] == ["text", "text", "msgmenu"]  # all three questions reached the user
    assert sent[0]["text"]["content"].endswith("1 愿意  2 不愿意")
    async with bot.db.read() as s:
        rows = (await s.execute(select(OutboxMessage).where(OutboxMessage.channel == "wecom_kf"))).scalars().all()
    assert {r.status for r in rows} == {"delivered"}


async def test_a_resend_refused_as_a_duplicate_msgid_is_probably_delivered(bot: SandboxClient,
                                                                           fake: FakeWeCom) -> None:
    """The answer to kf/send_msg is lost; the retry (same msgid) is refused with 95033: the
    message counts as delivered, with the reason kept, and reached the user once."""
    await user_says(bot, fake, "你好")
    fake.lose_answers("kf/send_msg")
    async with bot.db.transaction() as s:
        from storage import outbox

        await outbox.enqueue(s, [outbox.Outgoing("wecom_kf", "你的会员卡已激活", to="wmUser1")],
                             now=bot.dispatcher.clock.now())
    await bot.deliver()
    assert fake.kf_to("wmUser1").count("你的会员卡已激活") == 1
    async with bot.db.read() as s:
        row = (await s.execute(select(OutboxMessage).where(OutboxMessage.text == "你的会员卡已激活"))).scalar_one()
    assert row.status == "delivered" and "95033" in (row.last_error or "")


async def test_messages_pulled_again_open_no_window(bot: SandboxClient, fake: FakeWeCom) -> None:
    """A pull from an older cursor returns messages handled before: they are not answered
    again, and they do not reset the count of the user's window."""
    await user_says(bot, fake, "签到")
    for n in range(5):
        await bot.say("op1", f"/points grant wmUser1 {n + 1} 活动奖励")
    await bot.deliver()  # 5 sent in this window, the 6th held
    async with bot.db.transaction() as s:
        from storage import kf

        await kf.save_cursor(s, KF, "", now=bot.dispatcher.clock.now())
    await user_says(bot, fake)  # the whole history again
    assert len(fake.kf_to("wmUser1")) == 5
    async with bot.db.read() as s:
        statuses = (await s.execute(select(OutboxMessage.status).where(OutboxMessage.to == "wmUser1"))).scalars()
        assert sorted(statuses) == ["delivered"] * 5 + ["held"]
