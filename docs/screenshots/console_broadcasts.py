"""The console's 群发 page on one scenario, for before/after screenshots (issue 17, item 4).

A fresh siyu whose first start ran the winners job; three sandbox groups; a topic sent to all
and delivered; Monday noon, last week's winners; Monday 23:00 (quiet hours) a broadcast
confirmed and one waiting for 确认. Writes <out>.html and, where /usr/bin/chromium is, <out>.png.

    PYTHONPATH=. python docs/screenshots/console_broadcasts.py docs/screenshots/console-broadcasts-after
"""
from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bot.appkeys import JOBS
from bot.builtin import config_from_dict
from bot.testing import FakeClock, sandbox_app

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "operator-password-1"


async def main(out: Path) -> None:
    config = config_from_dict({
        "storage": {"url": f"sqlite:///{tempfile.mkdtemp()}/siyu.db"}, "logging": {"level": "WARNING"},
        "operators": {"admins": ["sandbox:op1"]}, "scheduler": {"enabled": False},
        "console": {"users": [{"name": "ops", "password": PASSWORD}], "secret": "s" * 32}})
    clock = FakeClock()  # Sunday 2026-11-22 10:00 in Shanghai
    async with sandbox_app(config, clock=clock) as bot:
        jobs = bot.app[JOBS]
        await jobs.run("winners")  # what the first start's run of the job does
        for chat in ("g1", "g2", "g3"):
            await bot.event("member_joined", f"m-{chat}", chat=chat)
        await bot.say("u1", "签到", chat="g1", name="小美")
        await bot.say("u2", "签到", chat="g2", name="阿强")
        await bot.say("op1", "/broadcast all 【今日话题】{weekday}好！你最喜欢哪款新品？")
        await bot.say("op1", "确认")
        await bot.deliver()
        clock.set(datetime(2026, 11, 23, 4, 0, tzinfo=UTC))  # Monday 12:00: last week's winners
        await jobs.run("winners")
        await bot.deliver()
        clock.set(datetime(2026, 11, 23, 15, 0, tzinfo=UTC))  # Monday 23:00, in the quiet hours
        await bot.say("op1", "/broadcast all 明早 10 点新品开售，记得来看～")
        await bot.say("op1", "确认")
        await bot.say("op1", "/broadcast g3 周末福利：签到满 7 天送帆布袋～")  # waits for 确认
        await bot.deliver()
        login = await (await bot.http.get("/console/login")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', login)
        assert csrf is not None
        await bot.http.post("/console/login", data={"name": "ops", "password": PASSWORD, "csrf": csrf.group(1),
                                                    "next": "/console"})
        out.with_suffix(".html").write_text(await (await bot.http.get("/console/broadcasts")).text())
        if not shutil.which(CHROMIUM):
            return
        from playwright.async_api import async_playwright

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"])
            context = await browser.new_context(viewport={"width": 1280, "height": 520})
            await context.add_cookies([{"name": c.key, "value": c.value, "url": str(bot.http.make_url("/"))}
                                       for c in bot.http.session.cookie_jar])
            page = await context.new_page()
            await page.goto(str(bot.http.make_url("/console/broadcasts")))
            await page.screenshot(path=str(out.with_suffix(".png")), full_page=True)
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
