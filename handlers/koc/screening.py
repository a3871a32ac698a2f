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
from flows.questions import answer, choice, count, number, store, valid
from handlers.koc.config import KOC, KocRubric
from handlers.koc.services import NAME, SHARER, TESTER, TYPES
from handlers.lifecycle.services import after_purchase
from storage import community, koc

BOUGHT = ("买过/用过", "还没有")
ACTIVITIES = ("经常参加", "偶尔参加", "还没参加过")
PLATFORMS = ("小红书", "抖音", "微博", "B站", "知乎", "都不太用")
PREFERENCES = ("分享品牌内容", "自己创作内容", "试用新品写反馈", "推荐好物带货")
ROLE_OF_PREFERENCE = dict(zip(PREFERENCES, TYPES, strict=True))


def platforms(text: str) -> list[str] | None:
    """Several platforms by number or name, separated by spaces or commas; "都不太用" alone."""
    picked: list[str] = []
    for part in text.replace("，", " ").replace(",", " ").replace("、", " ").split():
        name = choice(part, PLATFORMS)
        if name is None:
            return None
        if name not in picked:
            picked.append(name)
    if not picked or (PLATFORMS[-1] in picked and len(picked) > 1):
        return None
    return [] if picked == [PLATFORMS[-1]] else picked


def score(answers: dict[str, Any], rubric: KocRubric) -> tuple[int, str]:
    """The 0–100 score and the recommended type."""
    points = rubric.bought if answers.get("bought") == BOUGHT[0] else 0
    points += {ACTIVITIES[0]: rubric.activities_often, ACTIVITIES[1]: rubric.activities_sometimes}.get(
        answers.get("activities", ""), 0)
    points += min(rubric.platforms_max, rubric.per_platform * len(answers.get("platforms", [])))
    followers = int(answers.get("followers", 0))
    points += (rubric.followers_10000 if followers >= 10_000 else rubric.followers_1000 if followers >= 1000
               else rubric.followers_100 if followers >= 100 else 0)
    hours = int(answers.get("hours", 0))
    points += rubric.hours_5 if hours >= 5 else rubric.hours_2 if hours >= 2 else 0
    role = ROLE_OF_PREFERENCE.get(answers.get("preference", ""), SHARER)
    if role == TESTER and answers.get("bought") != BOUGHT[0]:
        role = SHARER  # testers are chosen among members who have the product (the articles' 已购用户)
    return min(100, points), role


async def _submit(rubric: KocRubric, event: Any) -> None:
    conversation = event.model
    ctx: Context = conversation.ctx
    answers = {k: v for k, v in conversation.data.items() if not k.startswith("_")}
    total, role = score(answers, rubric)
    conversation.data.update(score=total, type=role)
    await koc.submit(ctx.session, ctx.member.id, score=total, recommended_type=role, answers=answers, now=ctx.now)
    # Whether they bought is part of the profile: lifecycle stages read it.
    await community.set_attributes(ctx.session, ctx.member.id, {"bought": answers.get("bought") == BOUGHT[0]})
    if answers.get("bought") == BOUGHT[0]:
        await after_purchase(ctx)


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
    followers = partial(count, low=0, high=1_000_000_000)  # 5千 and 1.2万 as fans write them
    hours = partial(number, low=0, high=168)
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
         "before": [store("hours", hours), partial(_submit, settings.rubric)]},
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
