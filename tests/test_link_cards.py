"""Link and mini-program cards on broadcasts and playbooks (issue 18 §5): WeCom customer groups
get the card as an attachment of their owner's task, filled for the group; a channel without
cards (the sandbox) gets the text with the card's title and URL; a bad card is refused in the
operator's words, in chat, in the API and in config."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from conftest import wecom_section
from sqlalchemy import select

from bot.appkeys import JOBS
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import FakeWeCom
from handlers.broadcasts import playbooks as sop
from storage.models import Group, OutboxMessage

MONDAY_9 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai: the digest's time
MEMBER_CENTER = "https://vip.example.com/center"
PLAYBOOK = {"name": "新品", "text": "{group}的朋友们，新品到了", "cron": "0 9 * * *",
            "link": {"title": "{group}专属：新品上市", "url": "{member_center}/new?group={group}",
                     "desc": "{weekday}限时优惠", "picurl": "https://cdn.example.com/cover.png"}}


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(wecom=wecom_section(fake.base_url, group_quota={"rule": "daily", "digest_at": "09:00"}),
                         operators={"admins": ["sandbox:op1"]}, scheduler={"enabled": False},
                         broadcasts={"member_center_url": MEMBER_CENTER}, sop=[PLAYBOOK])
    async with sandbox_app(config, clock=clock) as client:
        async with client.db.transaction() as s:
            for chat, owner in (("wrA", "zhangsan"), ("wrB", "zhangsan")):
                s.add(Group(channel="wecom", external_id=chat, name=f"客户群{chat[-1]}", owner=owner,
                            created_at=clock.now(), last_active_at=clock.now()))
        await client.event("member_joined", "m1", chat="g1")  # a sandbox group
        yield client


async def op(bot: SandboxClient, text: str) -> str:
    return "\n".join(r["text"] for r in await bot.say("op1", text) if r.get("to") == "op1")


async def test_a_playbooks_link_card_reaches_owner_tasks_filled_and_the_sandbox_as_text_and_url(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    clock.set(MONDAY_9)
    d = bot.dispatcher
    assert await sop.plan_slot(d.db, d.config, d.texts, d.config.sop[0], MONDAY_9, now=clock.now()) is not None
    assert await bot.app[JOBS].run("owner_tasks") == 2  # the two groups' cards differ ({group})
    await bot.deliver()
    tasks = {c.body["chat_id_list"][0]: c.body for c in fake.calls("externalcontact/add_msg_template")}
    assert tasks["wrA"]["text"] == {"content": "客户群A的朋友们，新品到了"}
    assert tasks["wrA"]["attachments"] == [{"msgtype": "link", "link": {
        "title": "客户群A专属：新品上市", "desc": "周一限时优惠", "picurl": "https://cdn.example.com/cover.png",
        # {member_center} as configured; a group's name in a URL is percent-encoded
        "url": f"{MEMBER_CENTER}/new?group=%E5%AE%A2%E6%88%B7%E7%BE%A4A"}}]
    assert tasks["wrB"]["attachments"][0]["link"]["title"] == "客户群B专属：新品上市"
    assert sorted(len(a) for a in fake.task_attachments.values()) == [1, 1]  # WeCom got them
    async with bot.db.read() as s:
        sandbox = (await s.execute(select(OutboxMessage.text).where(
            OutboxMessage.chat == "g1", OutboxMessage.text.startswith("本群的朋友们")))).scalars().all()
    assert sandbox == [f"本群的朋友们，新品到了\n\n本群专属：新品上市：{MEMBER_CENTER}/new?group=%E6%9C%AC%E7%BE%A4"]
