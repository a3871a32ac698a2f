"""``[onboarding]`` (the profile questions a new member answers) and ``[channel_codes]`` (the
tags a member who came by a channel code, 渠道活码, gets)."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from bot.config import Section, Setting

StartOn = Literal["contact_added", "first_message", "member_joined"]


class Question(Section):
    """One onboarding question. ``choice`` answers are one of ``choices`` (or its number);
    ``number`` answers are whole numbers within ``min``..``max``; ``text`` is free text."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    text: str = Field(min_length=1, max_length=500)
    # What operators see the answer under (/member, the console); default: the question.
    label: str | None = Field(None, min_length=1, max_length=32)
    kind: Literal["choice", "number", "text"] = "text"
    choices: list[str] = Field(default_factory=list)
    min: int | None = None
    max: int | None = None
    # A choice answer also becomes a tag of the member (e.g. the city "上海").
    tag: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        if self.kind == "choice" and len(self.choices) < 2:
            raise ValueError(f"question {self.key!r}: a choice question needs at least 2 choices")
        if self.kind != "choice" and (self.choices or self.tag):
            raise ValueError(f"question {self.key!r}: choices and tag are for choice questions")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"question {self.key!r}: min is greater than max")
        return self


def _default_questions() -> list[Question]:
    return [
        Question(key="city", text="你在哪个城市？", kind="choice", choices=["北京", "上海", "广州", "深圳", "其他"],
                 tag=True),
        Question(key="age", text="方便说下你的年龄吗？（回复数字）", kind="number", min=1, max=120),
        Question(key="source", text="你是从哪里知道我们的？", kind="text"),
    ]


class OnboardingConfig(Section):
    enabled: bool = True
    # When onboarding starts: a contact is added, a member's first one-to-one message, a group join.
    start_on: list[StartOn] = Field(default_factory=lambda: list[StartOn](["contact_added"]))
    questions: list[Question] = Field(default_factory=_default_questions, min_length=1, max_length=20)
    remind_after_s: int = Field(86_400, ge=60)
    close_after_s: int = Field(172_800, ge=60)

    @model_validator(mode="after")
    def _order(self) -> OnboardingConfig:
        if self.close_after_s <= self.remind_after_s:
            raise ValueError("close_after_s must be later than remind_after_s")
        keys = [q.key for q in self.questions]
        # consent: the last question's answer; phone: the number a member binds on the member center.
        if len(set(keys)) != len(keys) or {"consent", "phone"} & set(keys):
            raise ValueError("question keys must be unique and not 'consent' or 'phone' (siyu keeps those)")
        return self


def _codes(value: dict[str, list[str]]) -> dict[str, list[str]]:
    for code, tags in value.items():
        if not 1 <= len(code) <= 64:
            raise ValueError(f"channel code {code!r} must be 1 to 64 characters")
        for tag in tags:
            if not 1 <= len(tag) <= 64:
                raise ValueError(f"tag {tag!r} of channel code {code!r} must be 1 to 64 characters")
    return value


ONBOARDING = Setting("onboarding", OnboardingConfig)
# Channel codes (渠道活码 State) → the tags a member who came by that code gets.
CHANNEL_CODES: Setting[dict[str, list[str]]] = Setting(
    "channel_codes", Annotated[dict[str, list[str]], AfterValidator(_codes)], default=dict)
