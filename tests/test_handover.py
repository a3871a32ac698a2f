"""Group owners change and staff leave (issue 18 §2): owner tasks waiting for someone who no
longer owns the group, or left, are withdrawn in WeCom and packed again for the new owner
within the group's quota, and the operators are told. Handovers (在职/离职继承) run from
``/handover`` and ``POST /api/handovers``, are audited, and their polled results are reported."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import WECOM_AES_KEY, WECOM_CORP, WECOM_TOKEN, wecom_section
from sqlalchemy import select, update

from bot.appkeys import CHANNELS, JOBS
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_transfers import staff_deleted
from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, chat_changed
from storage.models import AuditEntry, Delivery, Group, Handover, OutboxMessage

OPERATOR = "o" * 32
GROUPS = [("wrA", "zhangsan"), ("wrB", "zhangsan"), ("wrC", "lisi")]
MONDAY_9 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # the digest's time (Asia/Shanghai)


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    wecom = wecom_section(fake.base_url, group_quota={"rule": "daily", "digest_at": "09:00"})
    config = make_config(wecom=wecom, operators={"admins": ["sandbox:op1"]}, scheduler={"enabled": False},
                         api={"tokens": [{"token": OPERATOR, "role": "operator", "name": "crm"}]})
    for chat, owner in GROUPS:
        fake.add_group(chat, owner, ["wmX"], name=f"客户群{chat[-1]}")
    async with sandbox_app(config, clock=clock) as client:
        async with client.db.transaction() as s:
            for chat, owner in GROUPS:
                s.add(Group(channel="wecom", external_id=chat, name=f"客户群{chat[-1]}", owner=owner,
                            created_at=clock.now(), last_active_at=clock.now()))
        yield client


async def callback(bot: SandboxClient, plaintext: str) -> None:
    path, body = CallbackBuilder(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP).post(plaintext)
    resp = await bot.http.post(path, data=body, headers={"Content-Type": "text/xml"})
    assert resp.status == 200, await resp.text()
    assert await bot.app[CHANNELS]["wecom"].endpoint.idle(10)  # type: ignore[attr-defined]


async def tasks_handed(bot: SandboxClient, clock: FakeClock, text: str) -> None:
    """An operator's broadcast to every group, packed at 09:00 and handed to the owners."""
    await bot.say("op1", f"/broadcast all {text}")
    await bot.say("op1", "确认")
    clock.set(MONDAY_9)
    assert await bot.app[JOBS].run("owner_tasks") == 2  # zhangsan's (wrA + wrB), lisi's (wrC)
    await bot.deliver()


async def statuses(bot: SandboxClient) -> dict[str, str]:
    async with bot.db.read() as s:
        rows = (await s.execute(select(Group.external_id, Delivery.status).join(Group, Group.id == Delivery.group_id)
                                .order_by(Delivery.id))).all()
    return dict(rows)


async def told(bot: SandboxClient, who: str, *, containing: str) -> list[str]:
    async with bot.db.read() as s:
        texts = (await s.execute(select(OutboxMessage.text).where(OutboxMessage.to == who))).scalars().all()
    return [t for t in texts if containing in t]


def task_calls(fake: FakeWeCom) -> list[tuple[str, list[str]]]:
    return [(c.body["sender"], c.body["chat_id_list"]) for c in fake.calls("externalcontact/add_msg_template")
            if c.body is not None]


async def test_an_owner_change_repacks_the_waiting_task_to_the_new_owner_and_tells_operators(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    await tasks_handed(bot, clock, "今天的话题")
    fake.confirm_tasks("zhangsan", chats=["wrB"])  # wrB got it; wrA still waits for zhangsan
    fake.groups["wrA"].owner = "wangwu"
    await callback(bot, chat_changed("wrA", "update", detail="change_owner"))

    [withdrawn] = fake.cancelled  # zhangsan's task, withdrawn in WeCom (cancel_groupmsg_send)
    assert fake.calls("externalcontact/cancel_groupmsg_send")[0].body == {"msgid": withdrawn}
    assert await statuses(bot) == {"wrA": "planned", "wrB": "delivered", "wrC": "awaiting_owner"}
    assert await bot.app[JOBS].run("owner_tasks") == 1  # the same day: the withdrawn task used no quota
    await bot.deliver()
    assert task_calls(fake)[-1] == ("wangwu", ["wrA"])  # only wrA, to its owner now; wrB is not sent twice
    assert await statuses(bot) == {"wrA": "awaiting_owner", "wrB": "delivered", "wrC": "awaiting_owner"}

    assert await bot.app[JOBS].run("owner_task_moves") == 1
    [alert] = await told(bot, "op1", containing="群主变更")
    assert "zhangsan" in alert and "1 个群" in alert and "wangwu" in alert
    assert await bot.app[JOBS].run("owner_task_moves") == 0  # said once
    # The same callback again (WeCom's retry) withdraws nothing more.
    await callback(bot, chat_changed("wrA", "update", detail="change_owner", at=1_700_000_001))
    assert len(fake.cancelled) == 1


async def test_a_group_over_its_quota_is_not_repacked_the_same_day(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    clock.set(MONDAY_9)  # the quota counts by the day an item was planned for
    await tasks_handed(bot, clock, "今天的话题")
    fake.confirm_tasks("zhangsan")  # wrA and wrB got today's message: their quota is used
    await bot.app[CHANNELS]["wecom"].owner_tasks.poll_once()  # type: ignore[attr-defined]
    await bot.say("op1", "/broadcast all 第二条")
    await bot.say("op1", "确认")  # 09:00: today's digest, for every group
    fake.groups["wrC"].owner = "zhaoliu"
    await callback(bot, chat_changed("wrC", "update", detail="change_owner"))
    assert await bot.app[JOBS].run("owner_tasks") == 1
    await bot.deliver()
    # wrC's withdrawn item and 第二条 in one digest to its new owner: the withdrawn task used
    # none of wrC's quota; wrA and wrB, which got today's message, are held to theirs.
    assert task_calls(fake)[-1] == ("zhaoliu", ["wrC"])
    assert fake.calls("externalcontact/add_msg_template")[-1].body["text"]["content"] == "今天的话题\n\n第二条"
    async with bot.db.read() as s:
        skipped = (await s.execute(select(Delivery.reason).where(Delivery.status == "skipped"))).scalars().all()
    assert skipped == ["receive quota used: 1 a day"] * 2


async def test_staff_who_leave_have_their_tasks_withdrawn_until_their_groups_are_handed_over(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    await tasks_handed(bot, clock, "今天的话题")
    fake.departed.add("lisi")
    await callback(bot, staff_deleted("lisi", corp_id=WECOM_CORP))
    assert await statuses(bot) == {"wrA": "awaiting_owner", "wrB": "awaiting_owner", "wrC": "planned"}
    assert await bot.app[JOBS].run("owner_tasks") == 0  # nobody to confirm wrC's: it waits
    assert await bot.app[JOBS].run("owner_task_moves") == 1
    assert await told(bot, "op1", containing="lisi 已离职")

    [started] = await bot.say("op1", "/handover lisi zhaoliu groups")
    assert "离职继承" in started["text"]  # lisi left: 离职继承 without being told
    assert await bot.app[JOBS].run("wecom_handovers") == 1  # groups move at once
    assert fake.calls("externalcontact/groupchat/transfer")[0].body == {"chat_id_list": ["wrC"],
                                                                        "new_owner": "zhaoliu"}
    assert fake.groups["wrC"].owner == "zhaoliu"
    assert await bot.app[JOBS].run("owner_tasks") == 1
    await bot.deliver()
    assert task_calls(fake)[-1] == ("zhaoliu", ["wrC"])
    assert await bot.app[JOBS].run("handover_reports") == 1
    [report] = await told(bot, "op1", containing="已结束")
    assert "群已接替 1 个" in report and "已完成" in report


async def test_a_handover_from_the_command_is_audited_polled_and_reported(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    fake.customers["zhangsan"] = ["wm1", "wm2", "wm3"]
    [usage] = await bot.say("op1", "/handover --help")
    assert "/handover <原跟进人> <接替人>" in usage["text"]
    [wrong] = await bot.say("op1", "/handover zhangsan wangwu 朋友")
    assert "范围要是 customers / groups / all" in wrong["text"]
    [same] = await bot.say("op1", "/handover zhangsan zhangsan")
    assert "不能是同一个人" in same["text"]
    [started] = await bot.say("op1", "/handover zhangsan wangwu customers")
    assert "#1" in started["text"] and "在职继承" in started["text"]
    [busy] = await bot.say("op1", "/handover zhangsan lisi")
    assert "进行中的客户转接 #1" in busy["text"]

    jobs = bot.app[JOBS]
    assert await jobs.run("wecom_handovers") == 0  # asked; the customers have 24 h to refuse
    assert fake.calls("externalcontact/transfer_customer")[0].body["external_userid"] == ["wm1", "wm2", "wm3"]
    fake.takeover("wm1", 1)
    fake.takeover("wm2", 3)
    assert await jobs.run("wecom_handovers") == 0  # wm3 still waits
    [status] = await bot.say("op1", "/handover status 1")
    assert "进行中" in status["text"] and "客户已接替 1 个" in status["text"] and "客户客户拒绝 1 个" in status["text"]
    fake.takeover("wm3", 1)
    assert await jobs.run("wecom_handovers") == 1
    assert await jobs.run("handover_reports") == 1
    assert await jobs.run("handover_reports") == 0
    [report] = await told(bot, "op1", containing="客户转接 #1 已结束")
    assert "客户已接替 2 个" in report and "wm2（客户拒绝）" in report
    async with bot.db.read() as s:
        actions = (await s.execute(select(AuditEntry.action, AuditEntry.result))).all()
    assert ("handover.create", "ok") in actions and ("handover.finished", "ok") in actions
    assert ("/handover", "ok") in actions


async def post(bot: SandboxClient, body: Any, key: str | None = None) -> tuple[int, Any, bool]:
    headers = {"Authorization": f"Bearer {OPERATOR}", **({"Idempotency-Key": key} if key else {})}
    resp = await bot.http.post("/api/handovers", json=body, headers=headers)
    return resp.status, await resp.json(), resp.headers.get("Idempotent-Replayed") == "true"


async def test_a_handover_from_the_api_is_made_once_per_key_and_reported_to_operators(
    bot: SandboxClient, fake: FakeWeCom,
) -> None:
    fake.customers["zhangsan"] = ["wm1"]
    assert (await post(bot, {"from": "zhangsan", "to": "zhangsan"}))[0] == 409
    assert (await post(bot, {"from": "zhangsan", "to": "wangwu", "scope": "朋友"}))[0] == 422
    assert (await post(bot, {"from": "zhang san", "to": "wangwu"}))[0] == 422
    status, first, _ = await post(bot, {"from": "zhangsan", "to": "wangwu"}, key="h-1")
    assert status == 202 and first["handover"]["status"] == "pending" and first["handover"]["mode"] == "onjob"
    again = await post(bot, {"from": "zhangsan", "to": "wangwu"}, key="h-1")
    assert again == (202, first, True)  # a retry changes nothing
    assert (await post(bot, {"from": "zhangsan", "to": "lisi"}, key="h-2"))[:2] == (
        409, {"error": {"code": "busy", "message": "this staff member has a handover that has not finished"}})

    jobs = bot.app[JOBS]
    await jobs.run("wecom_handovers")
    fake.takeover("wm1", 1)
    await jobs.run("wecom_handovers")  # the groups moved at once, wm1 now taken over
    resp = await bot.http.get(f"/api/handovers/{first['handover']['id']}",
                              headers={"Authorization": f"Bearer {OPERATOR}"})
    done = (await resp.json())["handover"]
    assert done["status"] == "done" and done["items"] == {"customer": {"done": 1}, "group": {"done": 2}}
    assert await jobs.run("handover_reports") == 1
    assert await told(bot, "op1", containing="客户转接 #1 已结束")  # asked by the API: the operators hear it
    async with bot.db.read() as s:
        audited = (await s.execute(select(AuditEntry.actor).where(AuditEntry.action == "api.handover.create")))
        assert audited.scalars().all() == ["api:crm"]


async def test_what_wecom_refuses_is_reported_with_its_reason_and_an_interrupted_handover_ends(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    [started] = await bot.say("op1", "/handover zhangsan wangwu groups mode=离职")  # zhangsan has not left
    assert "离职继承" in started["text"]
    assert await bot.app[JOBS].run("wecom_handovers") == 1
    assert fake.groups["wrA"].owner == "zhangsan"  # WeCom refused: 90500
    assert await bot.app[JOBS].run("handover_reports") == 1
    [report] = await told(bot, "op1", containing="客户转接 #1 已结束")
    assert "群失败 2 个" in report and "wrA（群主尚未离职，不能按离职继承转群（用 mode=在职））" in report

    await bot.say("op1", "/handover lisi wangwu")
    async with bot.db.transaction() as s:  # siyu stopped while asking WeCom
        await s.execute(update(Handover).where(Handover.id == 2).values(status="starting"))
    clock.advance(minutes=31)
    assert await bot.app[JOBS].run("wecom_handovers") == 1
    assert await bot.app[JOBS].run("handover_reports") == 1
    [report] = await told(bot, "op1", containing="客户转接 #2 已结束")
    assert "出错" in report and "被中断" in report
