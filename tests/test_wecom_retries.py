"""Retries that do not double (issue 18, section 4): a WeCom call whose answer was lost (a
timeout, a network error, -1) may have taken effect. A group task is looked up and adopted
rather than made twice for its owner; a welcome refused as already used is probably delivered."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from conftest import WECOM_AES_KEY, WECOM_CORP, WECOM_TOKEN, wecom_section
from sqlalchemy import select

from bot.appkeys import CHANNELS
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, contact_added
from storage import outbox
from storage.models import OutboxMessage

TASK = "externalcontact/add_msg_template"
DIGEST = "【今日话题】聊聊你最喜欢的新品"


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    fake.now = lambda: clock.now().timestamp()  # tasks' create_time on the test's clock
    config = make_config(wecom=wecom_section(fake.base_url), scheduler={"enabled": False})
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def task_for_owner(bot: SandboxClient) -> OutboxMessage:
    """An owner's task for two groups goes out; returns its row once settled."""
    async with bot.db.transaction() as s:
        await outbox.enqueue(s, [outbox.Outgoing("wecom", DIGEST, to="zhangsan", kind=outbox.OWNER_TASK,
                                                 meta={"chat_ids": ["wrA", "wrB"]})], now=bot.dispatcher.clock.now())
    await bot.deliver()
    return await row(bot)


async def row(bot: SandboxClient) -> OutboxMessage:
    async with bot.db.read() as s:
        return (await s.execute(select(OutboxMessage).where(OutboxMessage.kind == outbox.OWNER_TASK))).scalar_one()


async def test_a_lost_answer_adopts_the_task_instead_of_making_a_second(bot: SandboxClient, fake: FakeWeCom) -> None:
    fake.lose_answers(TASK)  # WeCom made the task; its answer never arrived
    task = await task_for_owner(bot)
    assert len(fake.tasks) == 1  # the owner finds one task in their client, not two
    [msgid] = fake.tasks
    assert task.status == "awaiting_owner" and task.meta["msgid"] == msgid  # and siyu follows that one
    assert fake.calls("externalcontact/get_groupmsg_list_v2")[0].body["creator"] == "zhangsan"


async def test_a_later_attempt_looks_first(bot: SandboxClient, fake: FakeWeCom, clock: FakeClock) -> None:
    """The look-up itself fails (WeCom busy): the row is tried again later, and that attempt
    looks before it creates anything."""
    fake.lose_answers(TASK)
    fake.fail("externalcontact/get_groupmsg_list_v2", -1, times=3)
    assert (await task_for_owner(bot)).status == "pending"  # to be tried again
    clock.advance(minutes=10)
    await bot.deliver()
    task = await row(bot)
    assert len(fake.tasks) == 1 and task.status == "awaiting_owner" and task.meta["msgid"] == next(iter(fake.tasks))
    assert len(fake.calls(TASK)) == 1


async def test_a_busy_answer_with_no_task_made_creates_it_once(bot: SandboxClient, fake: FakeWeCom) -> None:
    fake.fail(TASK, -1)  # refused before anything was made: the look-up finds nothing
    task = await task_for_owner(bot)
    assert len(fake.tasks) == 1 and task.status == "awaiting_owner"
    assert len(fake.calls(TASK)) == 2


async def test_a_welcome_retried_after_a_lost_answer_is_not_a_failure(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    """The welcome went out but its answer was lost; the retry is refused (41051, the code is
    used): the welcome is recorded as probably delivered, with the reason, not as failed."""
    fake.lose_answers("externalcontact/send_welcome_msg")
    path, body = CallbackBuilder(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP).post(
        contact_added("wmNew", "staff1", welcome_code="CODE-LOST", at=int(clock.now().timestamp())))
    assert (await bot.http.post(path, data=body, headers={"Content-Type": "text/xml"})).status == 200
    assert await bot.app[CHANNELS]["wecom"].endpoint.idle(10)  # type: ignore[attr-defined]
    await bot.deliver()
    async with bot.db.read() as s:
        welcome = (await s.execute(select(OutboxMessage).where(OutboxMessage.kind == "welcome"))).scalar_one()
    assert [c.body["welcome_code"] for c in fake.calls("externalcontact/send_welcome_msg") if c.body] == [
        "CODE-LOST", "CODE-LOST"]
    assert welcome.status == "delivered" and "41051" in (welcome.last_error or "")
    assert "probably delivered" in (welcome.last_error or "")
