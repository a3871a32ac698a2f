"""Onboarding: a new member answers the profile questions from ``[onboarding]`` and says whether
they may be messaged. Answers become member attributes, choice answers marked ``tag`` also tags.
Reminded once after ``remind_after_s``, closed after ``close_after_s``."""
from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from bot.config import Config
from bot.context import Context
from flows.engine import Flow, State
from flows.questions import choice, choices_line, store, valid
from handlers.onboarding.config import ONBOARDING, Question
from handlers.onboarding.services import CONSENT_KEY, CONSENT_TAG, SOURCE, parser
from storage import community
from storage import tags as member_tags

NAME = SOURCE
CONSENT = ("可以", "不用了")


def _prompt(question: Question) -> str:
    text = question.text.replace("{", "{{").replace("}", "}}")  # operators' text, not a template
    return f"{text}\n{choices_line(question.choices)}" if question.kind == "choice" else text


async def _save_profile(questions: list[Question], event: Any) -> None:
    """On finishing: the answers become attributes (and tags), in the update's transaction."""
    conversation = event.model
    ctx, data = conversation.ctx, conversation.data
    answers = {q.key: data[q.key] for q in questions if q.key in data}
    await community.set_attributes(ctx.session, ctx.member.id,
                                   {**answers, CONSENT_KEY: data.get("consent") == CONSENT[0]})
    tags = [str(data[q.key]) for q in questions if q.tag and q.key in data]
    if data.get("consent") == CONSENT[0]:
        tags.append(CONSENT_TAG)
    await member_tags.add(ctx.session, ctx.member.id, tags, source=NAME, now=ctx.now)


def build(config: Config) -> Flow:
    settings, texts = config[ONBOARDING], config.texts
    questions = list(settings.questions)
    asking = [f"q_{q.key}" for q in questions] + ["consent"]
    deadlines = ((timedelta(seconds=settings.remind_after_s), "remind"),
                 (timedelta(seconds=settings.close_after_s), "close"))
    flow_texts = {f"q_{q.key}": _prompt(q) for q in questions}
    flow_texts.update(intro=texts["onboarding_intro"], consent=texts["onboarding_consent"],
                      done=texts["onboarding_done"],
                      closed=texts["onboarding_closed"], reminder=texts["onboarding_reminder"])
    transitions: list[dict[str, Any]] = [
        {"trigger": "answer", "source": here, "dest": there, "conditions": [valid(parser(q))],
         "before": [store(q.key, parser(q))]}
        for here, there, q in zip(asking, asking[1:], questions, strict=False)
    ]
    consent = partial(choice, choices=CONSENT)
    transitions += [
        {"trigger": "answer", "source": "consent", "dest": "done", "conditions": [valid(consent)],
         "before": [store("consent", consent)], "after": [partial(_save_profile, questions)]},
        {"trigger": "remind", "source": asking, "dest": "="},
        {"trigger": "close", "source": asking, "dest": "closed"},
    ]
    states = [State(name, prompt=name, deadlines=deadlines) for name in asking]
    states += [State("done", prompt="done", final=True), State("closed", prompt="closed", final=True)]
    return Flow(NAME, title="新人资料", states=states, transitions=transitions, texts=flow_texts,
                intro="intro", reminder="reminder", recover_to=asking[0])


def start_data(ctx: Context) -> dict[str, Any]:
    """What the onboarding texts fill in: the member's name and how many questions there are."""
    return {"name": ctx.display_name, "count": len(ctx.config[ONBOARDING].questions) + 1}
