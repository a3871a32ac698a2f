"""The points mall on a phone, in headless Chromium (a 360 px wide touch screen): a member
browses the rewards, opens one, confirms, and sees the code; no page scrolls sideways, however
long a reward's name. Screenshots are kept in the test's tmp directory."""
from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import browser_missing
from sqlalchemy import select

from bot.appkeys import CONFIG
from bot.builtin import SiyuConfig
from bot.config import Config
from bot.member_center import pictures
from bot.member_center.config import MEMBER_CENTER
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import points, rewards
from storage.models import Member, Reward

if (_missing := browser_missing()) is not None:
    pytest.skip(_missing, allow_module_level=True)

LONG_NAME = "超长名字的限量联名款不锈钢真空保温杯礼盒装附赠杯套和替换杯盖" + "X" * 20
PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def png(width: int = 4, height: int = 4) -> bytes:
    """A real (tiny, green) PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x07\xc1\x60" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
async def shop(make_config: Callable[..., Config], clock: FakeClock, tmp_path: Path) -> AsyncIterator[SandboxClient]:
    config = make_config(member_center={"upload_dir": str(tmp_path / "uploads")})
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate({"rewards": [
        {"name": "咖啡券", "cost": 20, "stock": 2, "codes": ["CAFE-2026-0001", "CAFE-2026-0002"]},
        {"name": LONG_NAME, "cost": 500, "stock": 3}]}).rewards})
    async with sandbox_app(config, clock=clock) as bot:
        await bot.say("u1", "你好", name="小王")
        async with bot.db.transaction() as s:
            member = (await s.execute(select(Member).where(Member.external_id == "u1"))).scalar_one()
            await points.credit(s, member.id, 100, key="t:u1", reason="活动奖励", now=clock.now(), kind=points.GRANT)
            coffee = (await s.execute(select(Reward).where(Reward.name == "咖啡券"))).scalar_one()
            name = await pictures.save(bot.app[CONFIG][MEMBER_CENTER], png())
            await rewards.describe(s, coffee.id, description="门店任意一杯中杯咖啡，30 天内有效。" * 4, picture=name)
        yield bot


async def no_sideways_scroll(page: Any) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, f"{page.url} is {width} px wide on a 360 px screen"


async def test_a_member_redeems_on_a_phone_and_sees_the_code(shop: SandboxClient, browser: Any,
                                                            tmp_path: Path) -> None:
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    await page.goto(str(shop.http.make_url("/m/?as=u1")))
    await page.tap("nav.tabs a:has-text('商城')")
    await page.wait_for_url("**/m/mall")
    await page.wait_for_load_state("load")
    await no_sideways_scroll(page)
    # The picture loads (lazily: it is on the first screen).
    # Polled from here: wait_for_function evaluates a string, which the pages' CSP (no
    # 'unsafe-eval') refuses in newer Chromium builds.
    for _ in range(100):
        if await page.evaluate("document.querySelector('img.thumb').naturalWidth") == 4:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the reward's picture did not load")
    assert "积分不足，还差 400 积分" in await page.inner_text("main")
    await page.screenshot(path=str(tmp_path / "mall.png"), full_page=True)
    await page.tap("section.reward:has-text('咖啡券') a.button")
    await page.wait_for_url("**/m/mall/*")
    await no_sideways_scroll(page)
    await page.screenshot(path=str(tmp_path / "reward.png"), full_page=True)
    await page.tap("button:has-text('确认兑换')")
    await page.wait_for_url("**/m/redemptions")
    assert "CAFE-2026-0001" in await page.inner_text("p.notice")
    assert "已发放" in await page.inner_text("main")
    await no_sideways_scroll(page)
    await page.screenshot(path=str(tmp_path / "redemptions.png"), full_page=True)
    await page.goto(str(shop.http.make_url("/m/points")))
    assert "兑换 咖啡券" in await page.inner_text("main") and "兑换消耗" in await page.inner_text("main")
    await no_sideways_scroll(page)
    await page.screenshot(path=str(tmp_path / "points.png"), full_page=True)
    await context.close()
