"""The member center (会员中心) as a member on this machine meets it: signing in as a sandbox
member, the home page, the sign-in button (the same sign-in as 签到 in chat), and what a page
refuses (no session, a forged cookie, a form from elsewhere)."""
from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.config import Config
from bot.testing import FakeClock
from bot.testing.sandbox import SandboxClient
from storage import points


def notice(page: str) -> str:
    found = re.search(r'<p class="notice"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


async def test_a_sandbox_member_opens_the_member_center_and_sees_their_points(bot: SandboxClient) -> None:
    await bot.say("u1", "签到", chat="g1", name="小王")
    page = await bot.open_member_center("u1")
    assert "小王" in page
    assert re.search(r"<b>10</b><span class=\"muted\">可用积分", page)
    assert "今日已签到" in page  # signed in in chat today: the button says so


async def test_signing_in_on_the_page_is_the_chat_sign_in_once_a_day(bot: SandboxClient) -> None:
    await bot.open_member_center("u2")
    after = await bot.member_post("/m/checkin")
    assert "签到成功" in notice(after) and "连续签到 1 天" in notice(after)
    assert "今日已签到" in after
    # The same member in chat the same day: already signed in, no second credit.
    replies = await bot.say("u2", "签到", chat="g1")
    assert "已经签到" in replies[0]["text"]
    async with bot.db.read() as s:
        member = await _member_id(bot, "u2")
        assert await points.balance(s, member) == 10
    # Nothing of the page's sign-in went to a chat: the page showed it.
    assert not [m for m in await bot.outbox() if m.get("to") == "u2"]


async def test_page_and_chat_sign_ins_racing_credit_once(bot: SandboxClient) -> None:
    await bot.open_member_center("u3")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await bot.member_page("/m/"))
    assert csrf is not None
    results = await asyncio.gather(
        *[bot.http.post("/m/checkin", data={"csrf": csrf.group(1)}) for _ in range(5)],
        *[bot.say("u3", "签到", chat="g1") for _ in range(5)])
    assert all(getattr(r, "status", 200) == 200 for r in results)
    async with bot.db.read() as s:
        assert await points.balance(s, await _member_id(bot, "u3")) == 10


async def test_without_a_session_a_page_says_where_to_open_it(bot: SandboxClient) -> None:
    bot.http.session.cookie_jar.clear()
    resp = await bot.http.get("/m/")
    assert resp.status == 401
    assert "?as=" in await resp.text()  # on this machine, the sandbox's way in
    resp = await bot.http.post("/m/checkin", data={"csrf": "x"})
    assert resp.status == 401


async def test_a_forged_cookie_or_a_form_from_elsewhere_is_refused(bot: SandboxClient) -> None:
    await bot.open_member_center("u4")
    resp = await bot.http.post("/m/checkin", data={"csrf": "not-the-token"})
    assert resp.status == 403 and "页面已过期" in await resp.text()
    bot.http.session.cookie_jar.clear()
    bot.http.session.cookie_jar.update_cookies({"siyu_m": "eyJzIjoiYSIsImMiOiJiIn0.forged.sig"})
    assert (await bot.http.get("/m/")).status == 401
    async with bot.db.read() as s:
        assert await points.balance(s, await _member_id(bot, "u4")) == 0


async def test_signing_out_ends_the_session_for_a_copied_cookie_too(bot: SandboxClient) -> None:
    await bot.open_member_center("u5")
    cookie = {c.key: c.value for c in bot.http.session.cookie_jar}["siyu_m"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', await bot.member_page("/m/"))
    assert csrf is not None
    assert (await bot.http.post("/m/signout", data={"csrf": csrf.group(1)}, allow_redirects=False)).status == 303
    bot.http.session.cookie_jar.update_cookies({"siyu_m": cookie})
    assert (await bot.http.get("/m/")).status == 401


async def test_a_cookie_seen_before_is_still_checked_for_tampering_and_age(bot: SandboxClient,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages remember a cookie whose signature held (auth.CHECKED): a changed copy of it is still
    refused, and it still ends after ``session_days`` (30)."""
    await bot.open_member_center("u9")
    cookie = {c.key: c.value for c in bot.http.session.cookie_jar}["siyu_m"]
    bot.http.session.cookie_jar.clear()
    assert (await bot.http.get("/m/", headers={"Cookie": f"siyu_m={cookie}"})).status == 200
    # A changed payload (a signature's last character may be only padding bits).
    tampered = ("A" if cookie[0] != "A" else "B") + cookie[1:]
    assert (await bot.http.get("/m/", headers={"Cookie": f"siyu_m={tampered}"})).status == 401
    later = time.time() + 31 * 86400  # itsdangerous' clock; the session row's (the app's) is not moved
    monkeypatch.setattr(time, "time", lambda: later)
    assert (await bot.http.get("/m/", headers={"Cookie": f"siyu_m={cookie}"})).status == 401


async def test_an_action_notice_cannot_be_written_by_a_link(bot: SandboxClient) -> None:
    page = await bot.open_member_center("u6", "/m/?notice=恭喜中奖，请转账")
    assert "请转账" not in page


async def _member_id(bot: SandboxClient, external_id: str) -> int:
    from sqlalchemy import select

    from storage.models import Member
    async with bot.db.read() as s:
        return (await s.execute(select(Member.id).where(Member.external_id == external_id))).scalar_one()


async def test_a_member_the_brand_deleted_sees_nothing(bot: SandboxClient) -> None:
    from sqlalchemy import delete

    from storage.models import Member
    await bot.say("u8", "签到", chat="g1", name="小赵")
    assert "小赵" in await bot.open_member_center("u8")
    async with bot.db.transaction() as s:
        await s.execute(delete(Member).where(Member.external_id == "u8"))
    resp = await bot.http.get("/m/")
    assert resp.status == 401 and "小赵" not in await resp.text()


async def test_too_many_actions_or_pages_are_refused_for_a_minute(make_config: Callable[..., Config],
                                                                  clock: FakeClock) -> None:
    from bot.testing import sandbox_app
    config = make_config(member_center={"actions_per_min": 3, "pages_per_min_per_address": 12})
    async with sandbox_app(config, clock=clock) as bot:
        await bot.open_member_center("u1")  # 2 pages: the sign-in and home
        csrf = re.search(r'name="csrf" value="([^"]+)"', await bot.member_page("/m/"))
        assert csrf is not None
        statuses = [(await bot.http.post("/m/checkin", data={"csrf": csrf.group(1)}, allow_redirects=False)).status
                    for _ in range(4)]
        assert statuses == [303, 303, 303, 429]
        statuses = [(await bot.http.get("/m/")).status for _ in range(6)]
        assert statuses[-1] == 429 and "访问太频繁" in await (await bot.http.get("/m/")).text()
        clock.advance(61)
        assert (await bot.http.get("/m/")).status == 200


async def test_the_home_shows_yesterdays_streak_pending_points_and_the_open_vote(bot: SandboxClient,
                                                                                 clock: FakeClock) -> None:
    # The home reads the member's figures with the session (one read): they must be the same
    # figures the chat gives.
    await bot.say("u5", "签到", chat="g1", name="小李")
    member = await _member_id(bot, "u5")
    async with bot.as_operator() as ctx:
        await points.credit(ctx.session, member, 30, key="purchase:u5:1", reason="购物", now=ctx.now,
                            available_at=ctx.now + timedelta(days=7))
    replies = await bot.say("op1", "/vote open 下一款奖品 保温杯:300:50 帆布袋:200:80")
    assert "下一款奖品" in replies[0]["text"]
    clock.advance(days=1)  # a new day: yesterday's streak stands until today ends
    page = await bot.open_member_center("u5")
    assert re.search(r"<b>10</b><span class=\"muted\">可用积分", page)
    assert re.search(r"<b>30</b><span class=\"muted\">待发放", page)
    assert re.search(r"<b>1</b><span class=\"muted\">连续签到", page)
    assert "已连续 1 天" in page and "今日已签到" not in page  # the button is back for today
    assert "正在投票：下一款奖品" in page
    after = await bot.member_post("/m/checkin")
    assert "连续签到 2 天" in notice(after) and "今日已签到" in after
    assert re.search(r"<b>2</b><span class=\"muted\">连续签到", after)
