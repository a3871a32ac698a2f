"""A brand's own feature, written outside siyu and registered with one line (docs/architecture.md
walks through this very example): 「抽签」 draws the day's lucky saying, once a day per member, from
``[lucky] sayings``; a job opens the day's draw in every group at ``[lucky] open_at``. Nothing
inside siyu is edited for it: its config section, texts, router and job come with the feature."""
from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import Field, field_validator

from bot import filters, periods
from bot.appkeys import JOBS
from bot.builtin import FEATURES
from bot.config import Config, ConfigError, Section, Setting
from bot.context import Context
from bot.feature import Feature
from bot.jobs import Job
from bot.router import Keyword, Router
from bot.testing import FakeClock, sandbox_app
from bot.texts import Texts
from storage import community, once, outbox
from storage.engine import Database

# -- the feature: what a brand writes (in its own package, with texts.toml beside it) ---------------


class LuckyConfig(Section):
    keyword: str = Field("抽签", min_length=1, max_length=32)
    sayings: list[str] = Field(default_factory=lambda: ["今天宜分享", "今天宜打卡"], min_length=1)
    # Local time the day's draw opens in every group.
    open_at: str = "09:00"

    @field_validator("open_at")
    @classmethod
    def _time(cls, value: str) -> str:
        if not periods.HHMM.match(value):
            raise ValueError('open_at is a local time "HH:MM"')
        return value


LUCKY = Setting("lucky", LuckyConfig)


def lucky_router(config: Config) -> Router:
    router = Router("lucky")
    settings = config[LUCKY]

    # The keyword and its description (a text of the feature): listed in the member help.
    @router.message(filters.Text(settings.keyword), keyword=Keyword(settings.keyword, "lucky_about"))
    async def draw(ctx: Context) -> None:
        day = periods.local_day(ctx.now, ctx.zone)
        if not await once.claim(ctx.session, f"lucky:{ctx.member.id}:{day}", now=ctx.now):
            ctx.reply(ctx.texts("lucky_again"))
            return
        saying = settings.sayings[zlib.crc32(f"{ctx.member.id}:{day}".encode()) % len(settings.sayings)]
        ctx.reply(ctx.texts("lucky_draw", name=ctx.display_name, saying=saying))

    return router


async def open_draw(db: Database, config: Config, texts: Texts, now: datetime) -> int:
    """At ``open_at``, tell every group once a day; how many groups were told."""
    day, _ = periods.day_of(now, config.zone)
    at = periods.parse_hhmm(config[LUCKY].open_at)
    if now < day.replace(hour=at.hour, minute=at.minute):
        return 0
    async with db.transaction() as session:
        if not await once.claim(session, f"lucky:open:{day.date()}", now=now):
            return 0
        groups = await community.active_groups(session)
        text = texts("lucky_open", keyword=config[LUCKY].keyword)
        await outbox.enqueue(session, [outbox.Outgoing(g.channel, text, chat=g.external_id) for g in groups], now=now)
    return len(groups)


def lucky_texts(folder: Path) -> Path:
    path = folder / "texts.toml"
    path.write_text('lucky_draw = "{name}，你今天的幸运签：{saying}"\n'
                    'lucky_again = "今天已经抽过啦，明天再来～"\n'
                    'lucky_open = "今日幸运签已开放，发送「{keyword}」试试手气！"\n'
                    'lucky_about = "每天抽一支幸运签"\n', encoding="utf-8")
    return path


def lucky_feature(texts: Path) -> Feature:
    return Feature("lucky", settings=(LUCKY,), texts=texts, routers=lambda config: [lucky_router(config)],
                   jobs=lambda config: [Job("lucky_open", open_draw, every_s=60)])


# -- the tests ------------------------------------------------------------------------------------

SATURDAY_8 = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)  # 08:00 in Asia/Shanghai


@pytest.fixture
def with_lucky(make_config: Callable[..., Config], tmp_path: Path) -> Callable[..., Config]:
    feature = lucky_feature(lucky_texts(tmp_path))
    return lambda **sections: make_config(features=(*FEATURES, feature), **sections)


async def test_a_feature_from_outside_siyu_answers_its_keyword_once_a_day(
    with_lucky: Callable[..., Config], clock: FakeClock,
) -> None:
    clock.set(SATURDAY_8)
    config = with_lucky(lucky={"sayings": ["今天宜分享"]}, texts={"lucky_again": "明天再来抽～"})
    async with sandbox_app(config, clock=clock) as bot:
        [first] = await bot.say("u1", "抽签", name="小王")
        assert first["text"] == "小王，你今天的幸运签：今天宜分享"
        assert [r["text"] for r in await bot.say("u1", "抽签")] == ["明天再来抽～"]  # its text, overridden
        clock.advance(days=1)
        assert "幸运签" in (await bot.say("u1", "抽签"))[0]["text"]
        # The shipped features are all still there beside it.
        assert "签到成功" in (await bot.say("u1", "签到"))[0]["text"]


async def test_its_keyword_appears_in_the_member_help_by_itself(with_lucky: Callable[..., Config]) -> None:
    async with sandbox_app(with_lucky(lucky={"keyword": "求签"})) as bot:
        menu = (await bot.say("u1", "菜单"))[0]["text"]
        assert "求签  每天抽一支幸运签" in menu and "签到  " in menu


async def test_its_job_runs_with_the_others_and_opens_the_draw_once(
    with_lucky: Callable[..., Config], clock: FakeClock,
) -> None:
    clock.set(SATURDAY_8)
    async with sandbox_app(with_lucky(lucky={"open_at": "09:30"}), clock=clock) as bot:
        await bot.event("member_joined", "u1", chat="g1", name="小王")
        await bot.event("member_joined", "u2", chat="g2", name="小李")
        jobs = bot.app[JOBS]
        assert await jobs.run("lucky_open") == 0  # 08:00: not yet
        clock.advance(hours=1, minutes=30)
        assert await jobs.run("lucky_open") == 2
        assert await jobs.run("lucky_open") == 0  # once a day
        assert [m["text"] for m in await bot.outbox(chat="g2")][-1] == "今日幸运签已开放，发送「抽签」试试手气！"


def test_its_config_section_is_checked_like_the_shipped_ones(with_lucky: Callable[..., Config]) -> None:
    with pytest.raises(ConfigError) as info:
        with_lucky(lucky={"open_at": "9点半", "sayings": []})
    assert sorted(key for key, _ in info.value.problems) == ["lucky.open_at", "lucky.sayings"]
    with pytest.raises(ConfigError, match="unknown placeholder"):
        with_lucky(texts={"lucky_draw": "{nickname}"})
