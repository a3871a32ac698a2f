"""Onboarding for other features and surfaces: what its profile questions are called, so a
member's answers are shown under a Chinese name rather than their key; and a member changing
their answers or their consent to be messaged later (the member center's profile), checked as
the onboarding conversation checks them."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from bot.config import Config
from bot.context import Context
from bot.texts import Texts
from flows.questions import choice, number
from handlers.onboarding.config import ONBOARDING, Question
from storage import community
from storage import tags as member_tags

__all__ = ["CONSENT_KEY", "CONSENT_TAG", "SOURCE", "Question", "parser", "question_labels", "questions",
           "save_answers", "set_consent"]

SOURCE = "onboarding"  # the flow's name, and the source of the tags it gives
CONSENT_KEY = "consent"  # the attribute: may the brand message this member (True/False)
CONSENT_TAG = "同意接收通知"  # the tag a consenting member carries (broadcasts to tag:同意接收通知)


def questions(config: Config) -> list[Question]:
    """The profile questions, in order (``[onboarding] questions``)."""
    return list(config[ONBOARDING].questions)


def question_labels(config: Config, texts: Texts) -> dict[str, str]:
    """Each question's key → its name: its ``label``, else the text ``profile_<key>`` (the
    default questions'), else the question itself."""
    return {q.key: q.label or (texts(f"profile_{q.key}") if f"profile_{q.key}" in texts else q.text.rstrip("？?"))
            for q in config[ONBOARDING].questions}


def parser(question: Question) -> Callable[[str], Any]:
    """How an answer to ``question`` is read: one of its choices (or its number), a whole
    number within its range, or non-empty text. None: not an answer."""
    if question.kind == "choice":
        return partial(choice, choices=question.choices)
    if question.kind == "number":
        return partial(number, low=question.min, high=question.max)
    return lambda text: text.strip() or None


async def save_answers(ctx: Context, answers: Mapping[str, Any], *, cleared: tuple[str, ...] = ()) -> None:
    """The sender's answers changed (checked with ``parser``): kept as attributes, ``cleared``
    ones removed. A choice marked ``tag`` moves its tag (the old answer's tag goes if onboarding
    gave it; an operator's tag of the same words stays)."""
    member_id = ctx.member.id
    before = await community.attributes(ctx.session, member_id)
    tagged = {q.key for q in questions(ctx.config) if q.tag}
    old = [str(before[k]) for k in (*answers, *cleared) if k in tagged and k in before and before[k] != answers.get(k)]
    await member_tags.remove(ctx.session, member_id, old, source=SOURCE)
    await member_tags.add(ctx.session, member_id, [str(v) for k, v in answers.items() if k in tagged],
                          source=SOURCE, now=ctx.now)
    await community.set_attributes(ctx.session, member_id, dict(answers))
    await community.remove_attributes(ctx.session, member_id, cleared)


async def set_consent(ctx: Context, consent: bool) -> None:
    """The sender may (or may no longer) be messaged: the attribute onboarding keeps, and its tag."""
    await community.set_attributes(ctx.session, ctx.member.id, {CONSENT_KEY: consent})
    if consent:
        await member_tags.add(ctx.session, ctx.member.id, [CONSENT_TAG], source=SOURCE, now=ctx.now)
    else:
        await member_tags.remove(ctx.session, ctx.member.id, [CONSENT_TAG])
