"""/forget: a member asks the brand to delete what it holds on them (个人信息保护法). An admin
sees what will go, confirms, and it is gone: points, sign-ins, check-ins and their photos,
redemptions (the unit back in stock), the member-center session, messages not sent yet; the
deletion is audited by number only."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.appkeys import OUTBOX
from bot.builtin import SiyuConfig
from bot.config import Config
from bot.member_center import delete_unkept_photos
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.texts import Texts
from storage.models import (
    AuditEntry,
    Member,
    OutboxMessage,
    PointEntry,
    Reward,
    RewardCode,
    SignIn,
    TaskCheckin,
)
from tests.test_member_center_tasks import JPEG, PNG, check_in

TASKS = [{"name": "晒单", "points": 50, "per_day": 0, "approval": True, "proof": True}]


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock, upload_dir: Path) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]}, signin={"daily_points": 100},
                         member_center={"upload_dir": str(upload_dir)})
    config = config.model_copy(update={
        "tasks": SiyuConfig.model_validate({"tasks": TASKS}).tasks,
        "rewards": SiyuConfig.model_validate({"rewards": [{"name": "保温杯", "cost": 50, "stock": 3},
                                                      {"name": "话费券", "cost": 20, "stock": 2,
                                                       "codes": ["HF-001", "HF-002"]}]}).rewards})
    async with sandbox_app(config, clock=clock) as client:
        yield client


def setup(bot: SandboxClient) -> tuple[Config, Texts]:
    """What a job is run with (``bot.jobs``): the dispatcher's config and texts."""
    return bot.dispatcher.config, bot.dispatcher.texts


async def member_id(bot: SandboxClient, who: str) -> int | None:
    async with bot.db.read() as s:
        return (await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one_or_none()


async def count(bot: SandboxClient, model: type, member: int) -> int:
    async with bot.db.read() as s:
        return int((await s.execute(select(func.count()).select_from(model).where(
            model.member_id == member))).scalar_one())  # type: ignore[attr-defined]


async def test_an_admin_confirms_and_everything_of_the_member_is_gone(bot: SandboxClient, upload_dir: Path) -> None:
    await bot.say("u1", "签到", chat="g1", name="小周")
    assert "兑换" in (await bot.say("u1", "兑换 1"))[0]["text"]
    assert "兑换成功" in (await bot.say("u1", "确认"))[0]["text"]
    # The delivery worker stops: the answers from here on wait to be discarded, and none is sent
    # between the count below and the deletion (CI once saw one sent there, on PostgreSQL).
    await bot.app[OUTBOX].stop()
    await bot.say("u1", "兑换 2")
    assert "HF-001" in (await bot.say("u1", "确认"))[0]["text"]
    await bot.open_member_center("u1")
    status, _ = await check_in(bot, "晒单", photo=PNG)
    assert status == 200 and len(list(upload_dir.iterdir())) == 1
    me = await member_id(bot, "u1")
    assert me is not None

    [ask] = await bot.say("op1", f"/forget #{me}")
    assert "小周" in ask["text"] and f"/forget #{me} 确认" in ask["text"] and "不能恢复" in ask["text"]
    assert await member_id(bot, "u1") == me  # asking deletes nothing
    async with bot.db.read() as s:
        waiting = (await s.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.to == "u1", OutboxMessage.status == "pending"))).scalar_one()
    assert waiting >= 2  # 兑换 2 and its 确认
    [done] = await bot.say("op1", f"/forget #{me} 确认")
    # The cup is cancelled; the code reward was handed over at once.
    assert f"已删除用户 #{me}" in done["text"] and "取消未发放的兑换 1 个" in done["text"]
    assert f"丢弃待发消息 {waiting} 条" in done["text"]

    assert await member_id(bot, "u1") is None
    for model in (SignIn, PointEntry, TaskCheckin):
        assert await count(bot, model, me) == 0
    async with bot.db.read() as s:
        cup = (await s.execute(select(Reward).where(Reward.name == "保温杯"))).scalar_one()
        entry = (await s.execute(select(AuditEntry).where(AuditEntry.action == "member.forget"))).scalar_one()
        codes = (await s.execute(select(RewardCode.code, RewardCode.redemption_id))).all()
    assert (cup.stock, cup.reserved) == (3, 0)  # the unit nobody will collect is back
    assert [tuple(c) for c in codes] == [("HF-002", None)]  # the code given stays spent, never given again
    assert entry.args == {"member": me, "redemptions_cancelled": 1, "messages_dropped": waiting}
    async with bot.db.read() as s:  # nothing is sent to them any more
        assert (await s.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.to == "u1", OutboxMessage.status == "pending"))).scalar_one() == 0
    resp = await bot.http.get("/m/")  # the browser still holds the member's cookie
    assert resp.status == 401 and "小周" not in await resp.text()
    # The photo is a file: the cleanup takes it once no check-in names it (after the grace hour).
    assert await delete_unkept_photos(bot.db, *setup(bot), datetime.now(UTC)) == 0
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await delete_unkept_photos(bot.db, *setup(bot), later) == 1
    assert list(upload_dir.iterdir()) == []


async def test_a_photo_a_check_in_still_names_stays(bot: SandboxClient, upload_dir: Path) -> None:
    await bot.open_member_center("u2")
    status, _ = await check_in(bot, "晒单", photo=JPEG)
    assert status == 200
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await delete_unkept_photos(bot.db, *setup(bot), later) == 0
    assert len(list(upload_dir.iterdir())) == 1


async def test_only_an_admin_forgets_and_never_someone_with_a_role(bot: SandboxClient) -> None:
    await bot.say("u3", "你好")
    await bot.say("op1", "/role grant u3 运营")
    [refused] = await bot.say("u3", "/forget op1 确认")  # an operator is not enough
    assert "管理员" in refused["text"]
    me = await member_id(bot, "u3")
    [kept] = await bot.say("op1", f"/forget #{me} 确认")
    assert "有运营角色" in kept["text"] and await member_id(bot, "u3") == me
    [usage] = await bot.say("op1", f"/forget #{me} 好的")
    assert "确认" in usage["text"] and await member_id(bot, "u3") == me
    [trail] = await bot.say("op1", "/audit 1")  # in the operators' words, as every result
    assert "/forget → 参数不对" in trail["text"] and "usage" not in trail["text"]
