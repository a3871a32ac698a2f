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
