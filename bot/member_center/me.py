"""我的: the member's own profile. Their onboarding answers (changed as the onboarding
conversation checks them), their consent to be messaged, and the mobile number they bind so a
purchase can later be matched to them; links to their points, redemptions and KOC application.

The number is kept in the member's attributes (``phone``), as the other profile answers are: no
schema change, operators read it where they read the profile (/member, the console), and it is
gone from there when the member removes it.
"""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot.appkeys import CONFIG, DB, DISPATCHER
from bot.context import Context
from bot.member_center.actions import act, back
from bot.member_center.auth import VISITOR, member_only
from bot.member_center.render import notice_of, page
from bot.numbers import FULL_WIDTH_DIGITS
from bot.texts import Texts
from handlers.koc import services as koc
from handlers.levels.services import levels_of
from handlers.onboarding import services as onboarding
from storage import community, points

PHONE_KEY = "phone"
MOBILE = re.compile(r"^1[3-9]\d{9}$")  # a mainland mobile number: 11 digits, 13x to 19x
SEPARATORS = re.compile(r"[\s\-()（）]")


def mobile(text: str) -> str | None:
    """A mainland mobile number as people type it (spaces, dashes, full-width digits, +86);
    None if it is not one."""
    digits = SEPARATORS.sub("", text.translate(FULL_WIDTH_DIGITS))
    for prefix in ("+86", "0086"):
        digits = digits.removeprefix(prefix)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits if MOBILE.match(digits) else None


def masked(phone: str) -> str:
    """138****1234: enough for the member to know which number, not enough to read it off a screen."""
    return f"{phone[:3]}****{phone[-4:]}"


def texts_of(request: web.Request) -> Texts:
    return request.app[DISPATCHER].texts


def answer_field(key: str) -> str:
    return f"q_{key}"


async def _profile_page(request: web.Request, *, notice: str = "", status: int = 200) -> web.Response:
    visitor, config = request[VISITOR], request.app[CONFIG]
    texts = texts_of(request)
    async with request.app[DB].read() as s:
        attributes = await community.attributes(s, visitor.member_id)
        lifetime = await points.lifetime(s, visitor.member_id)
        application = await koc.latest_of(s, visitor.member_id)
    labels = onboarding.question_labels(config, texts)
    questions = [{"key": q.key, "field": answer_field(q.key), "label": labels[q.key], "kind": q.kind,
                  "choices": q.choices, "min": q.min, "max": q.max, "value": _shown(attributes.get(q.key))}
                 for q in onboarding.questions(config)]
    phone = attributes.get(PHONE_KEY)
    return page(request, "me.html", status=status, notice=notice or notice_of(request),
                level=levels_of(config).tier(lifetime), questions=questions,
                consent=attributes.get(onboarding.CONSENT_KEY) is True,
                phone=masked(phone) if isinstance(phone, str) and MOBILE.match(phone) else "",
                privacy=texts("m_me_phone_privacy"), application=application)


def _shown(value: Any) -> str:
    return "" if value is None or isinstance(value, bool) else str(value)


@member_only
async def me(request: web.Request) -> web.Response:
    return await _profile_page(request)


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        raise web.HTTPBadRequest(reason="表单不完整，请刷新后再试")
    return value


@member_only
async def save_profile(request: web.Request) -> web.StreamResponse:
    """Each question's answer, checked as onboarding checks it; an empty field removes the answer."""
    form, config, texts = await request.post(), request.app[CONFIG], texts_of(request)
    labels = onboarding.question_labels(config, texts)
    answers: dict[str, Any] = {}
    cleared: list[str] = []
    for question in onboarding.questions(config):
        raw = _field(form, answer_field(question.key))
        if not raw.strip():
            cleared.append(question.key)
            continue
        value = onboarding.parser(question)(raw)
        if value is None:
            if question.kind == "choice":
                problem = texts("m_me_answer_choice", question=labels[question.key],
                                choices="、".join(question.choices))
            else:
                problem = texts("m_me_answer_number", question=labels[question.key],
                                low=question.min if question.min is not None else 0,
                                high=question.max if question.max is not None else 999_999_999)
            return await _profile_page(request, notice=problem, status=400)
        answers[question.key] = value

    async def save(ctx: Context) -> None:
        await onboarding.save_answers(ctx, answers, cleared=tuple(cleared))
        ctx.reply(ctx.texts("m_me_saved"))

    raise back(request, "m_me", await act(request, action=save))


@member_only
async def set_consent(request: web.Request) -> web.StreamResponse:
    """The switch: ``consent`` 1 (messages welcome) or 0 (no more)."""
    value = _field(await request.post(), "consent")
    if value not in ("0", "1"):
        raise web.HTTPBadRequest(reason="通知开关的取值不对")
    wanted = value == "1"

    async def switch(ctx: Context) -> None:
        await onboarding.set_consent(ctx, wanted)
        ctx.reply(ctx.texts("m_me_consent_on" if wanted else "m_me_consent_off"))

    raise back(request, "m_me", await act(request, action=switch))


@member_only
async def bind_phone(request: web.Request) -> web.StreamResponse:
    phone = mobile(_field(await request.post(), "phone"))
    if phone is None:
        return await _profile_page(request, notice=texts_of(request)("m_me_phone_invalid"), status=400)

    async def bind(ctx: Context) -> None:
        await community.set_attributes(ctx.session, ctx.member.id, {PHONE_KEY: phone})
        ctx.reply(ctx.texts("m_me_phone_bound", phone=masked(phone)))

    raise back(request, "m_me", await act(request, action=bind))


@member_only
async def remove_phone(request: web.Request) -> web.StreamResponse:
    async def remove(ctx: Context) -> None:
        await community.remove_attributes(ctx.session, ctx.member.id, [PHONE_KEY])
        ctx.reply(ctx.texts("m_me_phone_removed"))

    raise back(request, "m_me", await act(request, action=remove))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/m/me", me, name="m_me")
    r.add_post("/m/me/profile", save_profile, name="m_me_profile")
    r.add_post("/m/me/consent", set_consent, name="m_me_consent")
    r.add_post("/m/me/phone", bind_phone, name="m_me_phone")
    r.add_post("/m/me/phone/remove", remove_phone, name="m_me_phone_remove")
