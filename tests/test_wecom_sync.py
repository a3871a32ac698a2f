"""Day one on WeCom: the staff's customers and the customer groups a brand already has, read page
by page from the fake WeCom (opaque cursors, errors mid-way), resumed after a failure, and a
second run that changes nothing; staff relationships, where a transfer is not a loss."""
from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.channels.wecom.config import WecomConfig
from bot.channels.wecom.sync import ContactSync, SyncAborted, for_channel
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_contacts import BY_USER, FOLLOW, GROUP_GET, contact_removed
from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, contact_added
from storage.contact_sync import RunState
from storage.engine import Database
from storage.models import Group, GroupMembership, Member, StaffRelationship
from tests.conftest import WECOM_AES_KEY, WECOM_CORP, WECOM_TOKEN, wecom_section

STAFF = ("LiLei", "HanMeimei", "ZhangWei")
ADDED = 1_700_000_000


def brand(fake: FakeWeCom, customers: int = 1000, groups: int = 60) -> None:
    """3 staff with ``customers`` each (the first 100 are also HanMeimei's: two relationships),
    and ``groups`` customer groups of 20 customers and their owner."""
    for s, staff in enumerate(STAFF):
        for i in range(customers):
            fake.add_customer(staff, f"wm{s}-{i:04d}", name=f"客户{s}-{i}", createtime=ADDED + i,
                              state="poster-2026" if i % 2 else "", remark=f"备注{i}" if i % 3 == 0 else "")
    for i in range(100):
        fake.add_customer("HanMeimei", f"wm0-{i:04d}", name=f"客户0-{i}", createtime=ADDED + 10_000 + i)
    for g in range(groups):
        owner = STAFF[g % 3]
        fake.add_group(f"wrChat{g:03d}AAAA", owner, [owner, *(f"wm{g % 3}-{g * 10 + k:04d}" for k in range(20))],
                       name=f"老客户群{g}", version=f"ver{g}")
    for staff in STAFF:
        fake.name(staff, staff)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make_sync(db: Database, http: aiohttp.ClientSession, fake: FakeWeCom,
              clock: FakeClock) -> Callable[..., ContactSync]:
    settings = WecomConfig(**wecom_section(fake.base_url))

    def make(**options: Any) -> ContactSync:
        options = {"calls_per_s": 2000.0, "max_wait_s": 0.0, "backoff_s": 0.0, **options}
        return for_channel(db, http, settings, clock, **options)

    return make


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.read() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def snapshot(db: Database) -> list[Any]:
    async with db.read() as s:
        return [sorted(tuple(r) for r in await s.execute(select(*model.__table__.columns)))  # type: ignore[attr-defined]
                for model in (Member, StaffRelationship, Group, GroupMembership)]


def first_page_calls(fake: FakeWeCom, staff: str) -> int:
    return sum(1 for r in fake.calls(BY_USER) if r.body and r.body["userid_list"] == [staff] and not r.body["cursor"])


async def test_a_sync_over_many_pages_survives_a_failure_and_a_restart(
        db: Database, fake: FakeWeCom, make_sync: Callable[..., ContactSync]) -> None:
    brand(fake)
    fake.fail_at(BY_USER, 7, -1)  # one page fails once: it is asked again
    fake.fail_at(BY_USER, 15, 45009, times=4)  # rate limited past the retries: the run stops
    seen: list[RunState] = []
    with pytest.raises(SyncAborted, match="45009"):
        await make_sync(attempts=2, report=seen.append).run()
    assert seen and 0 < seen[-1].counts["customers"] < 3100
    cut_short = await count(db, StaffRelationship)
    assert 0 < cut_short < 3100

    state = await make_sync(report=seen.append).run()  # the restart
    assert state is not None and state.resumed
    # It continued from the stored cursors: no staff member's list was read from the start twice.
    assert [first_page_calls(fake, s) for s in STAFF] == [1, 1, 1]
    assert any("-1" in e for e in state.errors) and any("45009" in e for e in state.errors)
    assert state.counts["staff"] == 3 and state.counts["customers"] == 3100 and state.counts["groups"] == 60
    # 11 pages of 100 for HanMeimei, 10 for the others; 60 groupchat/get
    assert fake.contact_calls(GROUP_GET) == 60
    assert await count(db, StaffRelationship) == 3100
    assert await count(db, StaffRelationship, StaffRelationship.ended_at.is_(None)) == 3100  # type: ignore[union-attr]
    assert await count(db, Member, Member.external_id.startswith("wm")) == 3000  # type: ignore[attr-defined]
    assert await count(db, Group) == 60
    assert await count(db, GroupMembership, GroupMembership.left_at.is_(None)) == 60 * 21  # type: ignore[union-attr]
    async with db.read() as s:
        shared = (await s.execute(select(Member).where(Member.external_id == "wm0-0021"))).scalar_one()
        rels = list((await s.execute(select(StaffRelationship).where(StaffRelationship.member_id == shared.id)
                                     .order_by(StaffRelationship.staff))).scalars())  # type: ignore[arg-type]
        group = (await s.execute(select(Group).where(Group.external_id == "wrChat007AAAA"))).scalar_one()
    # The customer came on the day WeCom says, by their channel code: not a new member of today.
    assert shared.first_seen_at == datetime.fromtimestamp(ADDED + 21, tz=UTC)
    assert shared.channel_code == "poster-2026" and shared.name == "客户0-21"
    assert [(r.staff, r.channel_code) for r in rels] == [("HanMeimei", None), ("LiLei", "poster-2026")]
    assert (group.name, group.owner, group.member_version) == ("老客户群7", "HanMeimei", "ver7")


async def test_the_same_sync_again_changes_nothing_and_a_change_is_seen(
        db: Database, fake: FakeWeCom, make_sync: Callable[..., ContactSync]) -> None:
    brand(fake, customers=250, groups=12)
    first = await make_sync().run()
    assert first is not None and first.counts["relationships_added"] == 850
    before = await snapshot(db)

    again = await make_sync().run()
    assert again is not None and not again.resumed
    changed = {k: v for k, v in again.counts.items()
               if k.endswith(("_added", "_changed", "_joins", "_leaves")) and v}
    assert changed == {}
    assert await snapshot(db) == before

    fake.add_customer("LiLei", "wm0-0003", name="改了名", createtime=ADDED + 3, state="poster-2026",
                      remark="新备注")
    fake.groups["wrChat000AAAA"].members.remove("wm0-0001")
    third = await make_sync().run()
    assert third is not None
    # Two staff members list the renamed customer: two pages written at once may both count the change.
    assert third.counts.get("members_changed") in (1, 2)
    assert (third.counts.get("relationships_changed"), third.counts.get("group_leaves")) == (1, 1)
    async with db.read() as s:
        assert (await s.execute(select(Member.name).where(Member.external_id == "wm0-0003"))).scalar_one() == "改了名"


async def test_a_second_process_does_not_run_the_same_sync(
        db: Database, fake: FakeWeCom, make_sync: Callable[..., ContactSync]) -> None:
    brand(fake, customers=150, groups=0)
    fake.latency(0.05)
    first, second = await asyncio.gather(make_sync().run(), make_sync().run())
    assert sorted([first is None, second is None]) == [False, True]


# -- staff relationships from callbacks ----------------------------------------------------------


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(wecom=wecom_section(fake.base_url, sync_every_h=0))
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def callback(bot: SandboxClient, xml: str) -> None:
    path, body = CallbackBuilder(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP).post(xml)
    resp = await bot.http.post(path, data=body, headers={"Content-Type": "text/xml"})
    assert resp.status == 200
    from bot.appkeys import CHANNELS
    assert await bot.app[CHANNELS]["wecom"].endpoint.idle(10)  # type: ignore[attr-defined]


async def customer(bot: SandboxClient, external_id: str) -> tuple[Member, list[tuple[str, str | None]]]:
    async with bot.db.read() as s:
        member = (await s.execute(select(Member).where(Member.external_id == external_id))).scalar_one()
        rels = (await s.execute(select(StaffRelationship.staff, StaffRelationship.ended_by)
                                .where(StaffRelationship.member_id == member.id)
                                .order_by(StaffRelationship.staff))).all()  # type: ignore[arg-type]
    return member, [tuple(r) for r in rels]  # type: ignore[misc]


async def test_a_transfer_is_not_a_loss_and_the_last_real_deletion_is(bot: SandboxClient) -> None:
    await callback(bot, contact_added("wmAlice", "LiLei", state="poster-2026", at=1_790_000_001))
    await callback(bot, contact_added("wmAlice", "HanMeimei", at=1_790_000_002))
    # 在职继承: LiLei's customer is handed to a colleague; WeCom removes LiLei's contact.
    await callback(bot, contact_removed("wmAlice", "LiLei", source="DELETE_BY_TRANSFER", at=1_790_000_003))
    member, rels = await customer(bot, "wmAlice")
    assert member.status == "active" and member.lost_at is None
    assert rels == [("HanMeimei", None), ("LiLei", "transfer")]

    await callback(bot, contact_removed("wmAlice", "HanMeimei", by_customer=True, at=1_790_000_004))
    member, rels = await customer(bot, "wmAlice")
    assert member.status == "lost" and member.lost_at is not None
    assert rels == [("HanMeimei", "customer"), ("LiLei", "transfer")]


async def test_a_deletion_while_another_staff_member_keeps_the_customer_is_not_a_loss(bot: SandboxClient) -> None:
    await callback(bot, contact_added("wmBob", "LiLei", at=1_790_000_001))
    await callback(bot, contact_added("wmBob", "ZhangWei", at=1_790_000_002))
    await callback(bot, contact_removed("wmBob", "LiLei", at=1_790_000_003))
    member, rels = await customer(bot, "wmBob")
    assert member.status == "active"
    assert rels == [("LiLei", "staff"), ("ZhangWei", None)]
    await callback(bot, contact_removed("wmBob", "ZhangWei", at=1_790_000_004))
    assert (await customer(bot, "wmBob"))[0].status == "lost"
    # Added again: a customer again.
    await callback(bot, contact_added("wmBob", "ZhangWei", at=1_790_000_005))
    member, rels = await customer(bot, "wmBob")
    assert member.status == "active" and rels == [("LiLei", "staff"), ("ZhangWei", None)]


# -- the command -----------------------------------------------------------------------------------


async def siyu(*args: str, cwd: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIYU_")}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_siyu_wecom_sync_has_help(tmp_path: Path) -> None:
    code, out, _ = await siyu("wecom", "sync", "--help", cwd=tmp_path)
    assert code == 0 and "usage: siyu wecom sync" in out and "sync_calls_per_s" in out


async def test_siyu_wecom_sync_shows_progress_and_a_summary_and_says_when_it_stops(
        tmp_path: Path, fake: FakeWeCom) -> None:
    brand(fake, customers=120, groups=3)
    section = "\n".join(f"{k} = {json.dumps(v)}" for k, v in wecom_section(fake.base_url).items())
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path / "s.db"}"\n[logging]\nlevel = "WARNING"\n'
                      f'[server]\npublic_url = "http://127.0.0.1:8080"\n'  # the member center's sign-in
                      f"[wecom]\n{section}\nsync_calls_per_s = 150\n", encoding="utf-8")
    fake.fail_at(FOLLOW, 1, -1, times=3)  # busy past the retries: the run stops, and says how to go on
    code, out, err = await siyu("wecom", "sync", "--config", str(config), cwd=tmp_path)
    assert code == 1 and "同步中断" in err and "get_follow_user_list: -1" in err and "从中断处继续" in err
    fake.fail_at(BY_USER, 2, -1)

    code, out, err = await siyu("wecom", "sync", "--config", str(config), cwd=tmp_path)
    assert code == 0, err
    assert "同步中 [" in out and "员工 3/3" in out
    assert "同步完成" in out and "客户 460 位" in out and "客户群 3 个" in out and "接口错误" in out

    code, _, err = await siyu("wecom", "sync", "--config", str(tmp_path / "none.toml"), cwd=tmp_path)
    assert code == 2


async def test_the_daily_job_syncs_when_due_and_not_again_within_sync_every_h(
        make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> None:
    from bot.appkeys import CHANNELS, JOBS

    brand(fake, customers=120, groups=2)
    config = make_config(wecom=wecom_section(fake.base_url, sync_every_h=24, sync_calls_per_s=150))
    async with sandbox_app(config, clock=clock) as bot:
        jobs, daily = bot.app[JOBS], bot.app[CHANNELS]["wecom"].daily_sync  # type: ignore[attr-defined]
        assert await jobs.run("wecom_sync") == 1
        await daily.task  # beside the job runner, which goes on with the other jobs meanwhile
        assert await count(bot.db, StaffRelationship) == 460
        clock.advance(hours=23)
        assert await jobs.run("wecom_sync") == 0
        clock.advance(hours=2)
        fake.add_customer("LiLei", "wmNew", name="新客户", createtime=ADDED)
        assert await jobs.run("wecom_sync") == 1
        await daily.task
        assert await count(bot.db, StaffRelationship) == 461
    async with sandbox_app(make_config(wecom=wecom_section(fake.base_url, sync_every_h=0)), clock=clock) as bot:
        assert "wecom_sync" not in [job.name for job in bot.app[JOBS].jobs]


async def test_synced_customers_are_new_on_the_day_they_came_not_on_the_day_of_the_sync(
        db: Database, fake: FakeWeCom, make_sync: Callable[..., ContactSync], clock: FakeClock) -> None:
    from datetime import timedelta

    from storage import rollups
    from storage.rollups import DailyMetric, Day

    brand(fake, customers=10, groups=0)  # 30 customers on 2023-11-14, HanMeimei's 90 more the day after
    await make_sync().run()

    async def new_on(at: datetime) -> int:
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        async with db.transaction() as s:
            await rollups.rollup_day(s, Day(start.date(), start, start + timedelta(days=1)))
            return sum((await s.execute(select(DailyMetric.value).where(
                DailyMetric.day == start.date(), DailyMetric.metric == "new_by_channel"))).scalars())

    assert await new_on(clock.now()) == 0
    assert await new_on(datetime.fromtimestamp(ADDED, tz=UTC)) == 30
    assert await new_on(datetime.fromtimestamp(ADDED + 10_000, tz=UTC)) == 90


async def test_a_real_sdk_reads_the_fakes_lists_page_by_page(fake: FakeWeCom) -> None:
    """wechatpy's WeChatClient, pointed at the fake (wecom.md §2.4), follows its cursors and reads
    the shapes it expects."""
    from wechatpy.work import WeChatClient

    brand(fake, customers=230, groups=3)
    base = fake.base_url

    class FakeClient(WeChatClient):  # type: ignore[misc]
        API_BASE_URL = base

        def fetch_access_token(self) -> Any:
            return self._fetch_access_token(url=base + "gettoken", params={"corpid": self.corp_id,
                                                                             "corpsecret": self.secret})

    def read() -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        client = FakeClient(WECOM_CORP, "app-secret", timeout=10, auto_retry=False)
        staff = client.external_contact.get_follow_user_list()["follow_user"]
        customers = list(client.external_contact.gen_all_by_user("LiLei", 100))
        first = client.external_contact.get_group_chat_list(limit=2)
        rest = client.external_contact.get_group_chat_list(limit=2, cursor=first["next_cursor"])
        info = client.external_contact.get_group_chat_info(first["group_chat_list"][0]["chat_id"])
        return staff, customers, first["group_chat_list"] + rest["group_chat_list"], info

    staff, customers, chats, info = await asyncio.to_thread(read)
    assert staff == list(STAFF)
    assert len(customers) == 230 and len(fake.calls(BY_USER)) == 3  # pages of 100, 100, 30
    assert {c["external_contact"]["external_userid"] for c in customers} == {f"wm0-{i:04d}" for i in range(230)}
    assert customers[1]["follow_info"] == {**customers[1]["follow_info"], "userid": "LiLei",
                                           "createtime": ADDED + 1, "state": "poster-2026"}
    assert [c["chat_id"] for c in chats] == ["wrChat000AAAA", "wrChat001AAAA", "wrChat002AAAA"]
    assert info["group_chat"]["owner"] == "LiLei" and len(info["group_chat"]["member_list"]) == 21


async def test_a_welcome_goes_out_in_time_while_a_sync_runs(
        make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> None:
    import time

    from bot.appkeys import CHANNELS, JOBS

    brand(fake)  # 31 pages and 60 groups: about 3 s at 30 calls a second
    fake.latency(0.05)
    config = make_config(wecom=wecom_section(fake.base_url, sync_every_h=24))
    async with sandbox_app(config, clock=clock) as bot:
        daily = bot.app[CHANNELS]["wecom"].daily_sync  # type: ignore[attr-defined]
        assert await bot.app[JOBS].run("wecom_sync") == 1
        await asyncio.sleep(0.5)
        path, body = CallbackBuilder(WECOM_TOKEN, WECOM_AES_KEY, WECOM_CORP).post(
            contact_added("wmNewcomer", "LiLei", welcome_code="CODE-SYNC"))
        started = time.monotonic()
        assert (await bot.http.post(path, data=body, headers={"Content-Type": "text/xml"})).status == 200
        for _ in range(400):  # the worker delivers on its own
            if fake.calls("externalcontact/send_welcome_msg"):
                break
            await asyncio.sleep(0.005)
        [welcome] = fake.calls("externalcontact/send_welcome_msg")
        assert welcome.at - started < 2.0 and not daily.task.done()  # in time, while the sync goes on
        await daily.task
        assert await count(bot.db, StaffRelationship) == 3101  # the sync's 3,100 and the newcomer
