"""KOC screening: a one-to-one conversation that finds key opinion customers among members.

The method comes from the brand articles (shared/domain/000): ask whether the member bought or
used the product, whether they join the brand's activities, where they are active on social
platforms and with how many followers, which role they would take and how much time they have.
A rubric (``[koc.rubric]``) scores the answers 0–100 and the preferred role suggests one of four
types. The result waits for an operator (``services.decide``); the member is told what happens next.
"""
from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from bot.config import Config
from bot.context import Context
from flows.engine import Flow, State, not_empty, remember
from flows.questions import answer, choice, store, valid
from handlers.koc.config import KOC
from handlers.koc.services import (
    ACTIVITIES,
    BOUGHT,
    NAME,
    PREFERENCES,
    parse_followers,
    parse_hours,
    platforms,
    score,
    submit_application,
)


async def _submit(event: Any) -> None:
    conversation = event.model
    ctx: Context = conversation.ctx
    answers = {k: v for k, v in conversation.data.items() if not k.startswith("_")}
    submitted = await submit_application(ctx, answers, in_chat=True)
    # One of theirs already waits (queued by nothing but a race): it keeps its place, none is added.
    total, role = submitted if submitted is not None else score(answers, ctx.config[KOC].rubric)
    conversation.data.update(score=total, type=role)


def _no_platform(event: Any) -> bool:
    return platforms(answer(event)) == []


def _answered(key: str, options: tuple[str, ...], wanted: str | None = None) -> Any:
    parse = partial(choice, choices=options)
    if wanted is None:
        return valid(parse)
    return lambda event: parse(answer(event)) == wanted


def build(config: Config) -> Flow:
    settings, texts = config[KOC], config.texts
    asking = ["bought", "product", "activities", "platforms", "followers", "preference", "hours"]
    deadlines = ((timedelta(seconds=settings.remind_after_s), "remind"),
                 (timedelta(seconds=settings.expire_after_s), "expire"))
    followers, hours = parse_followers, parse_hours
    transitions: list[dict[str, Any]] = [
        {"trigger": "answer", "source": "bought", "dest": "product",
         "conditions": [_answered("bought", BOUGHT, BOUGHT[0])],
         "before": [store("bought", partial(choice, choices=BOUGHT))]},
        {"trigger": "answer", "source": "bought", "dest": "activities",
         "conditions": [_answered("bought", BOUGHT, BOUGHT[1])],
         "before": [store("bought", partial(choice, choices=BOUGHT))]},
        {"trigger": "answer", "source": "product", "dest": "activities", "conditions": [not_empty],
         "before": [remember("product")]},
        {"trigger": "answer", "source": "activities", "dest": "platforms",
         "conditions": [_answered("activities", ACTIVITIES)],
         "before": [store("activities", partial(choice, choices=ACTIVITIES))]},
        # No platform: the followers question is skipped.
        {"trigger": "answer", "source": "platforms", "dest": "preference", "conditions": [_no_platform],
         "before": [store("platforms", platforms)]},
        {"trigger": "answer", "source": "platforms", "dest": "followers", "conditions": [valid(platforms)],
         "before": [store("platforms", platforms)]},
        {"trigger": "answer", "source": "followers", "dest": "preference", "conditions": [valid(followers)],
         "before": [store("followers", followers)]},
        {"trigger": "answer", "source": "preference", "dest": "hours",
         "conditions": [_answered("preference", PREFERENCES)],
         "before": [store("preference", partial(choice, choices=PREFERENCES))]},
        {"trigger": "answer", "source": "hours", "dest": "submitted", "conditions": [valid(hours)],
         "before": [store("hours", hours), _submit]},
        {"trigger": "remind", "source": asking, "dest": "="},
        {"trigger": "expire", "source": asking, "dest": "expired"},
    ]
    flow_texts = {name: texts[f"koc_{name}"] for name in asking}
    flow_texts.update(intro=texts["koc_intro"], submitted=texts["koc_submitted"], reminder=texts["koc_reminder"],
                      expired=texts["koc_expired"].replace("{keyword}", settings.keyword))
    states = [State(name, prompt=name, deadlines=deadlines) for name in asking]
    states += [State("submitted", prompt="submitted", final=True), State("expired", prompt="expired", final=True)]
    return Flow(NAME, title="KOC 申请", states=states, transitions=transitions, texts=flow_texts,
                intro="intro", reminder="reminder", recover_to="bought")
