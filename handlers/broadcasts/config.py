"""``[scheduler]`` and ``[[sop]]``: when playbooks (SOP) go out, to which groups, under which
quiet hours and caps (DESIGN §7). WeCom's group quota is the WeCom channel's (``[wecom.group_quota]``)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

import handlers.broadcasts.cards as cards
from bot import links
from bot.config import Config, Section, Setting
from bot.periods import hours_pair


class SchedulerConfig(Section):
    """APScheduler with its job store in siyu's database; on PostgreSQL one process (elected
    by an advisory lock) runs it, and another takes over within ``leader_check_s`` of its death."""

    enabled: bool = True
    # A slot missed while siyu was down is still sent if siyu is back within this many
    # seconds; older ones are recorded as missed and reported. Several missed slots of one
    # playbook coalesce into the latest.
    misfire_grace_s: int = Field(3600, ge=1, le=7 * 86_400)
    # How often a process that is not the leader tries to become it (seconds).
    leader_check_s: float = Field(2.0, gt=0, le=60)
    # Local times between which nothing scheduled goes out; it waits until the end. [] = none.
    quiet_hours: list[str] = Field(default_factory=lambda: ["22:00", "08:00"])
    # At most this many scheduled or broadcast messages per group per local day (0 = no cap).
    per_group_daily_cap: int = Field(3, ge=0, le=100)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: list[str]) -> list[str]:
        return hours_pair(value, "quiet_hours")


class PlaybookConfig(Section):
    """A playbook (SOP): what to send, to which groups, when. ``text`` may use {group},
    {date}, {weekday}, {task} (today's of ``daily_tasks``) and {leaderboard} (the group's
    top earners this week)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[^:\s]+$")
    text: str = Field(min_length=1, max_length=4000)
    enabled: bool = True
    # When: exactly one of a cron expression (minute hour day month weekday, local time), a
    # date-time, or N days after a group was created / a member joined (sent at the start of
    # ``window``, or 10:00).
    cron: str | None = None
    at: datetime | None = None
    after_group_created_days: int | None = Field(None, ge=0, le=365)
    after_member_joined_days: int | None = Field(None, ge=0, le=365)
    # Which groups: all, those with any of ``tags``, or these group ids. Member-joined
    # playbooks write one-to-one to the member instead.
    groups: Literal["all"] | list[str] = "all"
    tags: list[str] = Field(default_factory=list)
    # Local times the messages may go out between (a slot outside waits for the start).
    window: list[str] = Field(default_factory=list)
    # {task}: one a day, in turn.
    daily_tasks: list[str] = Field(default_factory=list)
    # A card beside the text (WeCom customer groups show it; other channels get its title and
    # URL after the text): link = {title, url, desc, picurl} or miniprogram = {title, appid,
    # page, pic_media_id}. Placeholders work in them; {member_center} starts a URL.
    link: dict[str, str] | None = None
    miniprogram: dict[str, str] | None = None

    @field_validator("window")
    @classmethod
    def _window(cls, value: list[str]) -> list[str]:
        return hours_pair(value, "window")

    @model_validator(mode="after")
    def _one_trigger(self) -> PlaybookConfig:
        given = [k for k in ("cron", "at", "after_group_created_days", "after_member_joined_days")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of cron, at, after_group_created_days, after_member_joined_days")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r}: {exc} (five fields: minute hour day month weekday)") from None
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("at needs a UTC offset (e.g. 2026-12-01T10:00:00+08:00)")
        if self.tags and self.groups != "all":
            raise ValueError("target groups by tags or by ids, not both")
        if self.link is not None and self.miniprogram is not None:
            raise ValueError(cards.DEFAULT_TEXTS("card_one_kind"))
        card = self.card()
        # {member_center} is checked across sections (``member_center_set``).
        found = [p for p in cards.problems(card, member_center_url="later")] if card else []
        if found:
            raise ValueError(cards.explain(cards.DEFAULT_TEXTS, found))
        return self

    def card(self) -> dict[str, str] | None:
        """The playbook's card, channel-neutral (``cards``), or None."""
        if self.link is not None:
            return cards.normalize({"type": cards.LINK, **self.link})
        if self.miniprogram is not None:
            return cards.normalize({"type": cards.MINIPROGRAM, **self.miniprogram})
        return None

    def target(self) -> dict[str, object]:
        if self.tags:
            return {"tags": list(self.tags)}
        return {"all": True} if self.groups == "all" else {"groups": list(self.groups)}


def _unique_names(playbooks: list[PlaybookConfig]) -> list[PlaybookConfig]:
    names = [p.name for p in playbooks]
    if len(set(names)) != len(names):
        raise ValueError("[[sop]] names must be unique")
    return playbooks


class BroadcastsConfig(Section):
    """``[broadcasts]``: what broadcasts and playbooks share."""

    # What {member_center} stands for (in texts and cards) instead of siyu's member center
    # ([server] public_url + /m/, with each link's campaign): the brand's own member page,
    # https only, used as written ({member_center:mall} is this address + /mall).
    member_center_url: str | None = Field(None, max_length=1024)

    @field_validator("member_center_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return value
        problem = (cards.url_problem("url", value) if value.startswith("https://")
                   else ("card_url_https", {"field": "url"}))
        if problem is not None:
            raise ValueError(cards.explain(cards.DEFAULT_TEXTS, [problem]))
        return value


SCHEDULER = Setting("scheduler", SchedulerConfig)
BROADCASTS = Setting("broadcasts", BroadcastsConfig)
# Operators call playbooks SOP: the config keeps their word ([[sop]]).
PLAYBOOKS: Setting[list[PlaybookConfig]] = Setting(
    "sop", Annotated[list[PlaybookConfig], AfterValidator(_unique_names)], default=list)


def member_center(config: Config) -> str | None:
    """Where {member_center} leads: ``[broadcasts] member_center_url`` (the brand's own page, an
    override), else siyu's member center when it is on ([server] public_url + /m/); None: nowhere."""
    override = config[BROADCASTS].member_center_url
    target = links.targets(config).get("member_center")
    return override or (target.root(config) if target is not None else None)


def link_problems(config: Config, text: str) -> list[cards.Problem]:
    """{member_center:<page>} with a page the member center does not have."""
    return [("link_page_unknown", {"placeholder": placeholder, "pages": pages})
            for placeholder, pages in links.unknown_pages(config, text)]


def member_center_set(config: Config) -> None:
    """A playbook's card that uses {member_center} needs the member center on (or
    ``[broadcasts] member_center_url``); a {member_center:<page>} needs a page that exists."""
    url = member_center(config)
    for playbook in config[PLAYBOOKS]:
        card = playbook.card()
        found = cards.problems(card, member_center_url=url) if card else []
        found += link_problems(config, f"{playbook.text} {cards.used_placeholders(card)}")
        if found:
            raise ValueError(f"[[sop]] {playbook.name}: {cards.explain(cards.DEFAULT_TEXTS, found)}")
