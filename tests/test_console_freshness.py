"""The console's overview says how fresh its rolled-up numbers are, rolls up at start, and draws
count charts on whole-number axes."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from bot.config import Config
from bot.console.charts import line_chart
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import rollups

PASSWORD = "operator-password-1"


async def overview(bot: SandboxClient) -> str:
    return await bot.console_page("/console", name="ops", password=PASSWORD)


async def rolled_up(bot: SandboxClient, clock: FakeClock) -> None:
    """Wait for the rollup that runs in the background right at start."""
    for _ in range(250):
        async with bot.db.read() as s:
            if await rollups.rolled_up_at(s) == clock.now():
                return
        await asyncio.sleep(0.02)
    raise AssertionError("no rollup at start")


def kpi(html: str, name: str) -> str:
    found = re.search(rf'id="kpi-{name}"><b>([^<]*)</b>', html)
    assert found, name
    return found.group(1)


async def test_after_a_restart_the_overview_is_rolled_up_and_says_when(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    config = make_config(console={"users": [{"name": "ops", "password": PASSWORD}], "secret": "s" * 32})
    async with sandbox_app(config, clock=clock) as bot:
        for who in ("u1", "u2", "u3"):
            await bot.event("contact_added", who, state="渠道A")
    clock.advance(minutes=5)
    async with sandbox_app(config, clock=clock) as bot:  # a restart: the jobs start over
        await rolled_up(bot, clock)
        html = await overview(bot)
        assert kpi(html, "members") == "3" and kpi(html, "new") == "3"
        assert "数据更新于 10:05" in html  # the fake clock's 02:05 UTC, in Asia/Shanghai


async def test_the_overview_says_when_nothing_was_rolled_up_yet(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    config = make_config(console={"users": [{"name": "ops", "password": PASSWORD}], "secret": "s" * 32})
    async with sandbox_app(config, clock=clock) as bot:
        await rolled_up(bot, clock)
        async with bot.db.transaction() as s:  # as if the first rollup had not run yet
            await s.execute(rollups.RUNS.delete())
        html = await overview(bot)
        assert "数据尚未汇总" in html and "数据更新于" not in html


def test_a_count_chart_has_whole_number_ticks() -> None:
    svg = str(line_chart(["2026-11-21", "2026-11-22"], [("签到", [0.0, 1.0])], title="每日签到"))
    ticks = re.findall(r'class="axis" text-anchor="end">([^<]*)</text>', svg)
    assert ticks == ["0", "1", "2"]  # not "0", "50%", "1"
    svg = str(line_chart(["a", "b"], [("新增", [3.0, 7.0])], title="新增"))
    assert re.findall(r'class="axis" text-anchor="end">([^<]*)</text>', svg) == ["0", "4", "8"]
    rate = str(line_chart(["a", "b"], [("签到率", [0.2, 0.4])], title="签到率", percent=True))
    assert re.findall(r'class="axis" text-anchor="end">([^<]*)</text>', rate) == ["0%", "50%", "100%"]
