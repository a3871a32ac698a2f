"""The sandbox page as a developer uses it locally: it shows what the member being played is
(成员, 管理员 ...), and one click plays an operator of the config; without one it says the line
that makes one. The page runs in a real headless Chromium (skipped without one, as the console's
browser tests are); the endpoint behind it is checked without a browser."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app


@pytest.fixture
async def bare(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    """The embedded defaults: no admin anywhere."""
    async with sandbox_app(make_config(), clock=clock) as client:
        yield client


async def test_the_roles_endpoint_lists_the_sandbox_identities_with_a_role(bot: SandboxClient) -> None:
    await bot.say("helper", "你好")
    assert "运营" in (await bot.say("op1", "/role grant helper operator"))[0]["text"]
    resp = await bot.http.get("/sandbox/roles")
    assert resp.status == 200
    data = await resp.json()
    assert data["roles"] == [{"id": "op1", "role": "admin", "label": "管理员"},
                             {"id": "helper", "role": "operator", "label": "运营"}]
    assert data["labels"]["member"] == "成员"


async def test_the_page_shows_the_role_and_plays_the_configured_admin_in_one_click(
    bot: SandboxClient, browser: Any,
) -> None:
    page = await browser.new_page()
    await page.goto(str(bot.http.make_url("/sandbox")))
    await page.wait_for_selector("#play button")
    assert await page.inner_text("#rolename") == "成员"
    assert not await page.is_visible("#nooperator")  # an admin exists: no instructions needed

    await page.click("#play button:has-text('扮演 op1（管理员）')")
    await page.wait_for_function("document.getElementById('rolename').textContent === '管理员'")
    assert await page.input_value("#member") == "op1"
    await page.wait_for_function("document.getElementById('title').textContent.includes('op1（管理员）')")
    await page.fill("#text", "/help")
    await page.click("button:has-text('发送')")
    await page.wait_for_selector(".msg.bot .bubble:has-text('/broadcast')")  # the operators' commands

    await page.click("#play button:has-text('回到成员 u1')")
    await page.wait_for_function("document.getElementById('rolename').textContent === '成员'")
    assert await page.input_value("#member") == "u1" and await page.input_value("#name") == "小王"


async def test_without_an_admin_the_page_says_how_to_make_one(bare: SandboxClient, browser: Any) -> None:
    page = await browser.new_page()
    await page.goto(str(bare.http.make_url("/sandbox")))
    await page.wait_for_selector("#nooperator", state="visible")
    hint = await page.inner_text("#nooperator")
    assert 'SIYU_OPERATORS_ADMINS=\'["sandbox:boss"]\' siyu run' in hint
    assert '[operators] admins = ["sandbox:boss"]' in hint
    assert await page.inner_text("#rolename") == "成员"


def test_the_documented_line_makes_boss_an_admin_of_the_sandbox() -> None:
    from bot.builtin import config_from_dict

    config = config_from_dict({}, env={"SIYU_OPERATORS_ADMINS": '["sandbox:boss"]'})
    assert config.operators.identities() == [("sandbox", "boss")]


async def test_on_a_phone_the_input_and_the_latest_answer_stay_on_screen(bot: SandboxClient, browser: Any) -> None:
    """At 390×844 the chat scrolls inside its own area: with a long history the input stays
    at the bottom of the screen and the newest answer shows above it (the page grew to 4,000 px
    and opened at the oldest message)."""
    for n in range(15):
        await bot.say("u1", "帮助", chat="g1", id=f"phone-{n}")
    await bot.deliver()
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    await page.goto(str(bot.http.make_url("/sandbox")))
    await page.wait_for_selector("#log .msg")
    footer = await page.locator("footer").bounding_box()
    assert footer is not None and footer["y"] + footer["height"] <= 844
    assert await page.evaluate("document.documentElement.scrollHeight") <= 844
    at_bottom = ("(() => { const l = document.getElementById('log');"
                 " return l.scrollHeight - l.scrollTop - l.clientHeight; })()")
    assert await page.evaluate(at_bottom) <= 2
