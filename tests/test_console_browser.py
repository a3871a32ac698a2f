"""The console in a real headless Chromium (Debian's package, driven by Playwright): what an
operator sees and clicks. Skipped where /usr/bin/chromium is missing, unless
SIYU_REQUIRE_BROWSER=1 (CI installs it and sets that, so a missing browser fails there)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import browser_missing
from sqlalchemy import select

from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage.models import KocApplication, MemberTag

KOC_ANSWERS = ["1", "空气炸锅，去年双11", "1", "1 2", "5000", "3", "6"]

if (_missing := browser_missing()) is not None:
    pytest.skip(_missing, allow_module_level=True)


@pytest.fixture
async def community(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    """Five members from two channel codes, chatting and signing in; one applies for KOC."""
    config = make_config(console={"users": [{"name": "ops", "password": "operator-password-1"}], "secret": "s" * 32})
    async with sandbox_app(config, clock=clock) as bot:
        for i, code in enumerate(("渠道A", "渠道A", "渠道A", "渠道B", "渠道B")):
            await bot.event("contact_added", f"u{i}", state=code, name=f"成员{i}")
            await bot.say(f"u{i}", "签到", chat="g1")
        await bot.say("u0", "退出")  # leaves the onboarding questions that adding the contact began
        await bot.say("u0", "申请KOC")
        for answer in KOC_ANSWERS:
            await bot.say("u0", answer)
        yield bot


async def test_an_operator_signs_in_reads_the_numbers_and_approves_a_koc(
    community: SandboxClient, browser: Any, tmp_path: Path,
) -> None:
    base = str(community.http.make_url("/console"))
    page = await browser.new_page()
    await page.goto(base)
    assert "/console/login" in page.url  # not signed in: the sign-in page
    await page.fill("input[name=name]", "ops")
    await page.fill("input[name=password]", "operator-password-1")
    await page.click("button:has-text('登录')")
    await page.wait_for_url(base)
    await page.click("button:has-text('立即刷新数据')")  # roll up now rather than wait for the job
    await page.wait_for_url(base)
    assert (await page.inner_text("#kpi-members b")).strip() == "5"
    assert (await page.inner_text("#kpi-new b")).strip() == "5"
    assert (await page.inner_text("#kpi-checkins b")).strip() == "5"
    assert (await page.inner_text("#kpi-activity b")).strip() == "100.0%"  # all 5 spoke in g1
    # The charts are drawn, with the seeded numbers on their points.
    assert await page.locator("svg.chart").count() >= 8
    points = await page.locator("svg.chart circle title").evaluate_all("ts => ts.map(t => t.textContent)")
    assert "渠道A 2026-11-22: 3" in points and "渠道B 2026-11-22: 2" in points and "签到 2026-11-22: 5" in points
    await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    # The KOC queue: approve as 内容官 instead of the recommended 体验官.
    await page.click("nav >> text=KOC 审核")
    row = page.locator("tr", has_text="成员0")
    assert await row.locator("td").nth(3).inner_text() == "体验官"
    await row.locator("select[name=type]").select_option("内容官")
    await row.locator("button:has-text('通过')").click()
    await page.wait_for_selector(".notice")
    assert "已通过（内容官）" in await page.inner_text(".notice")
    async with community.db.read() as s:
        application = (await s.execute(select(KocApplication))).scalar_one()
        tags = (await s.execute(select(MemberTag.tag)
                                .where(MemberTag.member_id == application.member_id))).scalars().all()
    assert application.status == "approved" and application.approved_type == "内容官" and "KOC:内容官" in tags
    await page.goto(str(community.http.make_url(f"/console/members/{application.member_id}")))
    assert "KOC:内容官" in await page.inner_text("#member-tags")


async def test_a_form_without_its_csrf_token_is_refused_in_the_browser(community: SandboxClient, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(str(community.http.make_url("/console/login")))
    await page.fill("input[name=name]", "ops")
    await page.fill("input[name=password]", "operator-password-1")
    await page.click("button:has-text('登录')")
    await page.goto(str(community.http.make_url("/console/koc")))
    row = page.locator("tr", has_text="成员0")
    # A page elsewhere posting the same form would not know the token: drop it from the form.
    await row.locator("form").first.evaluate("f => f.querySelector('input[name=csrf]').remove()")
    async with page.expect_response(lambda r: "/console/koc/" in r.url) as answer:
        await row.locator("button:has-text('通过')").click()
    assert (await answer.value).status == 403
    assert "CSRF" in await page.inner_text("main")
    async with community.db.read() as s:
        assert (await s.execute(select(KocApplication.status))).scalar_one() == "pending"


async def test_signing_out_ends_the_session_even_for_a_copy_of_its_cookie(
    community: SandboxClient, browser: Any,
) -> None:
    page = await browser.new_page()
    await page.goto(str(community.http.make_url("/console/login")))
    await page.fill("input[name=name]", "ops")
    await page.fill("input[name=password]", "operator-password-1")
    await page.click("button:has-text('登录')")
    await page.wait_for_url(str(community.http.make_url("/console")))
    copied = await page.context.cookies()  # as malware or a shared machine would keep it
    await page.click("header button:has-text('退出')")
    await page.wait_for_url("**/console/login")
    other = await browser.new_context()
    await other.add_cookies(copied)
    stolen = await other.new_page()
    await stolen.goto(str(community.http.make_url("/console/koc")))
    assert "/console/login" in stolen.url  # the copy signs in nobody: the session was revoked
    await other.close()
