"""KOC screening for other features and surfaces: the four types, the questions and their
rubric, submitting an application (the chat screening and the member center's form both submit
through ``submit_application``), starting a screening, and an operator's decision (the chat
command, the console and the REST API all decide through here)."""
from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Config
from bot.context import Context
from flows.questions import choice, count, number
from handlers.koc.config import KOC, KocRubric
from handlers.lifecycle.services import after_purchase, recompute
from storage import audit, community, koc
from storage import flows as member_flows
from storage import tags as member_tags
from storage.models import KocApplication, Member

__all__ = ["ACTIVITIES", "BOUGHT", "PLATFORMS", "PREFERENCES", "TYPES", "AnswerRefused", "KocType", "check_answers",
           "decide", "invite", "latest_of", "score", "screening_open", "start_screening", "submit_application"]

NAME = "koc_screening"  # the screening flow
SHARER, CREATOR, TESTER, SELLER = "分享官", "内容官", "体验官", "带货官"
TYPES = (SHARER, CREATOR, TESTER, SELLER)
KocType = Literal["分享官", "内容官", "体验官", "带货官"]

# The screening's questions with choices (the chat lists them by number, the form as options).
BOUGHT = ("买过/用过", "还没有")
ACTIVITIES = ("经常参加", "偶尔参加", "还没参加过")
PLATFORMS = ("小红书", "抖音", "微博", "B站", "知乎", "都不太用")
PREFERENCES = ("分享品牌内容", "自己创作内容", "试用新品写反馈", "推荐好物带货")
ROLE_OF_PREFERENCE = dict(zip(PREFERENCES, TYPES, strict=True))
FOLLOWERS_MAX, HOURS_MAX, PRODUCT_MAX = 1_000_000_000, 168, 500


def platforms(text: str) -> list[str] | None:
    """Several platforms by number or name, separated by spaces or commas; "都不太用" alone."""
    return platforms_of(text.replace("，", " ").replace(",", " ").replace("、", " ").split())


def platforms_of(parts: list[str]) -> list[str] | None:
    """The platforms named (each by number or name); "都不太用" alone is none ([]); None if
    one names no platform or none is named."""
    picked: list[str] = []
    for part in parts:
        name = choice(part, PLATFORMS)
        if name is None:
            return None
        if name not in picked:
            picked.append(name)
    if not picked or (PLATFORMS[-1] in picked and len(picked) > 1):
        return None
    return [] if picked == [PLATFORMS[-1]] else picked


def parse_followers(text: str) -> int | None:
    return count(text, 0, FOLLOWERS_MAX)  # 5千 and 1.2万 as fans write them


def parse_hours(text: str) -> int | None:
    return number(text, 0, HOURS_MAX)


def score(answers: dict[str, Any], rubric: KocRubric) -> tuple[int, str]:
    """The 0–100 score and the recommended type."""
    points = rubric.bought if answers.get("bought") == BOUGHT[0] else 0
    points += {ACTIVITIES[0]: rubric.activities_often, ACTIVITIES[1]: rubric.activities_sometimes}.get(
        answers.get("activities", ""), 0)
    points += min(rubric.platforms_max, rubric.per_platform * len(answers.get("platforms", [])))
    fans = int(answers.get("followers", 0))
    points += (rubric.followers_10000 if fans >= 10_000 else rubric.followers_1000 if fans >= 1000
               else rubric.followers_100 if fans >= 100 else 0)
    weekly = int(answers.get("hours", 0))
    points += rubric.hours_5 if weekly >= 5 else rubric.hours_2 if weekly >= 2 else 0
    role = ROLE_OF_PREFERENCE.get(answers.get("preference", ""), SHARER)
    if role == TESTER and answers.get("bought") != BOUGHT[0]:
        role = SHARER  # testers are chosen among members who have the product (the articles' 已购用户)
    return min(100, points), role


class AnswerRefused(ValueError):
    """A form's answer the chat screening would not take either; the message says which, in Chinese."""


def check_answers(*, bought: str, product: str, activities: str, platforms: list[str], followers: str,
                  preference: str, hours: str) -> dict[str, Any]:
    """The answers of the screening's form as the chat screening keeps them (the same keys and
    values, the same questions skipped: no product without one, no followers without a platform)."""
    answers: dict[str, Any] = {}
    answers["bought"] = _picked(bought, BOUGHT, "是否买过/用过")
    if answers["bought"] == BOUGHT[0]:
        product = product.strip()
        if not product:
            raise AnswerRefused("请写一下是哪款产品、大概什么时候买的")
        answers["product"] = product[:PRODUCT_MAX]
    answers["activities"] = _picked(activities, ACTIVITIES, "社群活动")
    picked = platforms_of([p.strip() for p in platforms])
    if picked is None:
        raise AnswerRefused("请选择活跃的平台（「都不太用」不能和其他平台同选）")
    answers["platforms"] = picked
    if picked:
        fans = parse_followers(followers)
        if fans is None:
            raise AnswerRefused("粉丝数请填数字，如 5000、5千、1.2万，没有就填 0")
        answers["followers"] = fans
    answers["preference"] = _picked(preference, PREFERENCES, "最愿意做的事")
    weekly = parse_hours(hours)
    if weekly is None:
        raise AnswerRefused(f"每周可投入的小时数请填 0 到 {HOURS_MAX} 的整数")
    answers["hours"] = weekly
    return answers


def _picked(value: str, options: tuple[str, ...], what: str) -> str:
    picked = value if value in options else None  # the form sends an option's words, nothing else
    if picked is None:
        raise AnswerRefused(f"请从选项中选择「{what}」")
    return picked


async def submit_application(ctx: Context, answers: dict[str, Any], *, in_chat: bool = False) -> tuple[int, str] | None:
    """The sender applies with ``answers`` (the chat screening's last answer, ``in_chat``, or the
    member center's form): scored by ``[koc.rubric]`` and queued for an operator's review; their
    score and recommended type. None if an application of theirs already waits (nothing kept).
    From the form, a screening they had started in chat ends here: one application, whichever
    way it came (the chat's own flow row is the flow engine's to write)."""
    member_id = ctx.member.id
    if await koc.pending_of(ctx.session, member_id) is not None:
        return None
    total, role = score(answers, ctx.config[KOC].rubric)
    await koc.submit(ctx.session, member_id, score=total, recommended_type=role, answers=answers, now=ctx.now)
    if not in_chat:
        # The screening's row says "submitted" as if the chat had finished: a screening begun
        # in chat stops asking, and the invitation of the active (``invite_the_active``) knows
        # this member applied.
        await member_flows.restart(ctx.session, member_id, NAME, state="submitted", active=False,
                                   data={**answers, "score": total, "type": role}, entered_at=ctx.now,
                                   deadlines_fired=0, deadline_at=None, now=ctx.now, finished=True)
    # Whether they bought is part of the profile: lifecycle stages read it.
    await community.set_attributes(ctx.session, member_id, {"bought": answers.get("bought") == BOUGHT[0]})
    if answers.get("bought") == BOUGHT[0]:
        await after_purchase(ctx)
    return total, role


async def latest_of(session: AsyncSession, member_id: int) -> KocApplication | None:
    """The member's latest application (pending or decided), for them to see where it stands."""
    return await koc.latest_of(session, member_id)


async def start_screening(ctx: Context) -> None:
    """Start a screening for the sender, unless an application of theirs waits for review."""
    if await koc.pending_of(ctx.session, ctx.member.id) is not None:
        ctx.send(ctx.texts("koc_pending"), to=ctx.update.sender)
        return
    await ctx.flows.start(ctx, NAME)


async def invite(ctx: Context, member: Member) -> bool:
    """An operator invites ``member`` to a screening (the first question goes to them on their
    channel); False if an application of theirs already waits for review. Audited."""
    waiting = await koc.pending_of(ctx.session, member.id) is not None
    await audit.record(ctx.session, actor=ctx.actor, action="koc.invite",
                       result="refused" if waiting else "ok", now=ctx.now, args={"member": member.external_id})
    if waiting:
        return False
    await ctx.flows.start_for(ctx, member.id, member.external_id, NAME, channel=member.channel)
    return True


async def decide(ctx: Context, application_id: int, *, approve: bool, role: str | None = None,
                 reason: str | None = None) -> KocApplication | None:
    """An operator approves (as ``role``, default the recommended type) or rejects (with a
    ``reason``) a pending application: the member is told, tagged, and it is audited.
    None if the application is not pending."""
    if role is not None and role not in TYPES:
        raise ValueError(f"unknown KOC type {role!r}; one of {', '.join(TYPES)}")
    actor = ctx.actor
    current = await ctx.session.get(KocApplication, application_id)
    chosen = role or (current.recommended_type if current else None)
    decided = await koc.decide(ctx.session, application_id, approve=approve, decided_by=actor, now=ctx.now,
                               approved_type=chosen, reason=reason)
    await audit.record(ctx.session, actor=actor, action="koc.approve" if approve else "koc.reject",
                       result="ok" if decided else "refused", now=ctx.now,
                       args={"application": application_id, "type": chosen, "reason": reason})
    if decided is None:
        return None
    member = await ctx.session.get(Member, decided.member_id)
    assert member is not None
    if approve:
        await member_tags.add(ctx.session, member.id, [f"KOC:{chosen}"], source="koc", now=ctx.now)
        await community.set_attributes(ctx.session, member.id, {"koc_type": chosen})
        await recompute(ctx, member.id)  # an approved KOC is a 超级用户 from now, not in 10 minutes
        ctx.send(ctx.texts("koc_approved", type=chosen), to=member.external_id, channel=member.channel)
    else:
        ctx.send(ctx.texts("koc_rejected", reason=reason or "—"), to=member.external_id, channel=member.channel)
    return decided


def screening_open(config: Config) -> bool:
    """Whether members may apply now (``[koc] enabled``); decided applications stay readable."""
    return config[KOC].enabled
