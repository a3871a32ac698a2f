"""The member center on a phone: headless Chromium (Debian's package, driven by Playwright)
emulating a 360 px wide touch screen in WeChat's in-app browser. A member opens it from the
sandbox, taps through it, and nothing overflows the screen. Screenshots are kept as artifacts
(``$SIYU_TEST_ARTIFACTS``, else the test's temporary folder)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import browser_missing

from bot.testing import SandboxClient

if (_missing := browser_missing()) is not None:
    pytest.skip(_missing, allow_module_level=True)

# WeChat's in-app browser on an Android phone (its user agent carries MicroMessenger).
PHONE: dict[str, Any] = {
    "viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
    "user_agent": ("Mozilla/5.0 (Linux; Android 12; M2012K11AC) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/107.0.5304.141 Mobile Safari/537.36 XWEB/5061 MMWEBSDK/20230504 MicroMessenger/8.0.37"),
    "locale": "zh-CN",
}


def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SIYU_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def fits(page: Any) -> None:
    """Nothing wider than the phone: no sideways scrolling."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"{page.url} is {width} px wide on a 360 px screen"


async def test_a_member_signs_in_on_a_phone(bot: SandboxClient, browser: Any, tmp_path: Path) -> None:
    await bot.say("u1", "签到", chat="g1", name="一个名字特别特别特别长的会员小王同学")
    await bot.say("u1", "hi", chat="g1")
    await bot.say("u7", "hi", chat="g1", name="小李")
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    # The sandbox page links to the member center as the member played there.
    await page.goto(str(bot.http.make_url("/sandbox")))
    await page.fill("#member", "u7")
    href = await page.get_attribute("#mcenter", "href")
    assert href == "/m/?as=u7"
    await page.goto(str(bot.http.make_url(href)))
    assert await page.title() == "会员中心"
    await page.screenshot(path=str(artifacts(tmp_path) / "member-center-home.png"), full_page=True)
    await fits(page)
    await page.tap("button:has-text('签到')")
    await page.wait_for_selector(".notice")
    assert "签到成功" in await page.inner_text(".notice")
    assert await page.is_disabled("button:has-text('今日已签到')")
    await fits(page)
    await page.screenshot(path=str(artifacts(tmp_path) / "member-center-signed-in.png"), full_page=True)
    # The notice is shown once: a reload does not sign in again, nor repeat it.
    await page.reload()
    assert await page.locator(".notice").count() == 0
    # A long name wraps rather than widening the page.
    await page.goto(str(bot.http.make_url("/m/?as=u1")))
    await fits(page)
    await context.close()
