"""我的 on the member center: the profile (onboarding answers changed as onboarding checks them),
the message switch, the bound mobile number (checked, masked, removable, with a privacy note),
and the KOC application as a form: the same rubric and review queue as the chat screening."""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.testing.sandbox import SandboxClient, csrf_of, sandbox_app
from handlers.onboarding.config import OnboardingConfig
from storage.models import KocApplication, Member, MemberTag


def notice(page: str) -> str:
    found = re.search(r'<p class="notice"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


async def member(bot: SandboxClient, external_id: str) -> Member:
    async with bot.db.read() as s:
        return (await s.execute(select(Member).where(Member.external_id == external_id)
                                .execution_options(populate_existing=True))).scalar_one()


async def tags_of(bot: SandboxClient, external_id: str) -> set[str]:
    m = await member(bot, external_id)
    async with bot.db.read() as s:
        return set((await s.execute(select(MemberTag.tag).where(MemberTag.member_id == m.id))).scalars())


async def applications(bot: SandboxClient, external_id: str) -> list[KocApplication]:
    m = await member(bot, external_id)
    async with bot.db.read() as s:
        return list((await s.execute(select(KocApplication).where(KocApplication.member_id == m.id)
                                     .order_by(KocApplication.id))).scalars())


async def post(bot: SandboxClient, path: str, form: dict[str, Any], *, page: str = "/m/me") -> tuple[int, str]:
    """A form post with the page's CSRF token; its status and the page it ends on."""
    csrf = csrf_of(await bot.member_page(page))
    resp = await bot.http.post(path, data={**form, "csrf": csrf})
    return resp.status, await resp.text()


PROFILE = {"q_city": "上海", "q_age": "28", "q_source": "朋友推荐"}


# -- profile -------------------------------------------------------------------------------------

async def test_the_profile_shows_the_onboarding_answers_and_edits_them(bot: SandboxClient) -> None:
    await bot.event("contact_added", "c1", name="阿花")
    for answer in ("2", "28", "朋友推荐", "1"):  # 上海, 28, a source, consent
        await bot.say("c1", answer)
    page = await bot.open_member_center("c1", "/m/me")
    assert "阿花" in page and "城市" in page and "年龄" in page and "从哪里知道我们" in page
    assert 'href="/m/points"' in page and 'href="/m/redemptions"' in page and 'href="/m/koc"' in page
    assert re.search(r'<option value="上海" selected>', page) and 'value="28"' in page and "朋友推荐" in page
    status, after = await post(bot, "/m/me/profile", {"q_city": "北京", "q_age": "２９", "q_source": "小红书"})
    assert status == 200 and notice(after) == "资料已保存"
    assert re.search(r'<option value="北京" selected>', after) and 'value="29"' in after
    attributes = (await member(bot, "c1")).attributes
    assert (attributes["city"], attributes["age"], attributes["source"], attributes["consent"]) == (
        "北京", 29, "小红书", True)
    assert await tags_of(bot, "c1") == {"北京", "同意接收通知"}  # the city's tag moved with the answer
    # An empty field removes that answer.
    await post(bot, "/m/me/profile", {"q_city": "北京", "q_age": "", "q_source": "小红书"})
    assert "age" not in (await member(bot, "c1")).attributes


async def test_an_answer_onboarding_would_refuse_is_refused(bot: SandboxClient) -> None:
    await bot.open_member_center("c2", "/m/me")
    await post(bot, "/m/me/profile", PROFILE)
    for bad, words in (({**PROFILE, "q_city": "火星"}, "请从选项中选择"), ({**PROFILE, "q_age": "121"}, "1 到 120"),
                       ({**PROFILE, "q_age": "二十八"}, "1 到 120")):
        status, page = await post(bot, "/m/me/profile", bad)
        assert status == 400 and words in notice(page), (bad, notice(page))
    missing = {k: v for k, v in PROFILE.items() if k != "q_age"}
    assert (await post(bot, "/m/me/profile", missing))[0] == 400
    attributes = (await member(bot, "c2")).attributes
    assert (attributes["city"], attributes["age"]) == ("上海", 28)  # nothing of the refused forms kept


async def test_the_message_switch_is_the_consent_onboarding_keeps(bot: SandboxClient) -> None:
    page = await bot.open_member_center("c3", "/m/me")
    assert "已关闭" in page and "开启通知" in page  # never asked: no consent
    status, page = await post(bot, "/m/me/consent", {"consent": "1"})
    assert status == 200 and "已开启通知" in notice(page) and "关闭通知" in page
    assert (await member(bot, "c3")).attributes["consent"] is True and "同意接收通知" in await tags_of(bot, "c3")
    status, page = await post(bot, "/m/me/consent", {"consent": "0"})
    assert "已关闭通知" in notice(page) and "开启通知" in page
    assert (await member(bot, "c3")).attributes["consent"] is False and "同意接收通知" not in await tags_of(bot, "c3")
    assert (await post(bot, "/m/me/consent", {"consent": "yes"}))[0] == 400


# -- phone ---------------------------------------------------------------------------------------

async def test_a_phone_number_is_checked_bound_masked_and_removed(bot: SandboxClient) -> None:
    page = await bot.open_member_center("p1", "/m/me")
    assert "隐私说明" in page and "解除绑定" in page  # the note says what it is for, who sees it, how to remove it
    for bad in ("12812341234", "1381234123", "138123412345", "abc", "０"):
        status, page = await post(bot, "/m/me/phone", {"phone": bad})
        assert status == 400 and "11 位手机号" in notice(page), bad
    assert "phone" not in (await member(bot, "p1")).attributes
    status, page = await post(bot, "/m/me/phone", {"phone": "+86 138-1234-5678"})
    assert status == 200 and notice(page) == "手机号已绑定：138****5678"
    assert "138****5678" in page and "13812345678" not in page  # never shown whole
    assert (await member(bot, "p1")).attributes["phone"] == "13812345678"
    status, page = await post(bot, "/m/me/phone/remove", {})
    assert status == 200 and "已解除绑定" in notice(page) and "138****" not in page
    assert "phone" not in (await member(bot, "p1")).attributes


async def test_operators_read_the_bound_number_under_a_chinese_name(bot: SandboxClient) -> None:
    await bot.open_member_center("p2", "/m/me")
    await post(bot, "/m/me/phone", {"phone": "15912345678"})
    replies = await bot.say("op1", "/member p2")
    assert "绑定手机号：15912345678" in replies[0]["text"]


# -- KOC -----------------------------------------------------------------------------------------

CHAT = ["1", "空气炸锅，去年双11", "1", "1 2", "5千", "3", "6"]
FORM = {"bought": "买过/用过", "product": "空气炸锅，去年双11", "activities": "经常参加",
        "platforms": ["小红书", "抖音"], "followers": "5千", "preference": "试用新品写反馈", "hours": "6"}


async def test_the_koc_form_scores_as_the_chat_screening_and_joins_its_queue(bot: SandboxClient) -> None:
    await bot.say("k1", "申请KOC")
    for answer in CHAT:
        await bot.say("k1", answer)
    [chat] = await applications(bot, "k1")
    page = await bot.open_member_center("k2", "/m/koc")
    assert "你购买或使用过我们的产品吗？" in page and "小红书" in page
    status, page = await post(bot, "/m/koc", FORM)
    assert status == 200 and "初评是「体验官」" in notice(page) and "待审核" in page
    [form] = await applications(bot, "k2")
    assert (form.score, form.recommended_type, form.status, form.answers) == (
        chat.score, chat.recommended_type, "pending", chat.answers)
    assert form.score == 75 and (await member(bot, "k2")).attributes["bought"] is True
    # The operators' queue holds both, the form's as the chat's.
    pending = (await bot.say("op1", "/koc pending"))[0]["text"]
    assert "75 分，推荐体验官" in pending and pending.count("推荐体验官") == 2
    # A second application while one waits: refused, in the form and in chat.
    status, page = await post(bot, "/m/koc", FORM)
    assert "审核中" in notice(page) and len(await applications(bot, "k2")) == 1
    assert (await bot.say("k2", "申请KOC"))[0]["text"] == "你的 KOC 申请正在审核中，请耐心等待～"
    assert len(await applications(bot, "k2")) == 1


async def test_no_product_and_no_platform_skip_their_questions_as_in_chat(bot: SandboxClient) -> None:
    await bot.open_member_center("k3", "/m/koc")
    form = {"bought": "还没有", "product": "", "activities": "还没参加过", "platforms": ["都不太用"], "followers": "",
            "preference": "试用新品写反馈", "hours": "1"}
    status, page = await post(bot, "/m/koc", form)
    assert status == 200 and "初评是「分享官」" in notice(page)  # a tester needs the product
    [application] = await applications(bot, "k3")
    assert application.score == 0 and application.answers == {
        "bought": "还没有", "activities": "还没参加过", "platforms": [], "preference": "试用新品写反馈", "hours": 1}


async def test_koc_answers_the_chat_would_not_take_are_refused(bot: SandboxClient) -> None:
    await bot.open_member_center("k4", "/m/koc")
    for change in ({"bought": "也许"}, {"product": ""}, {"platforms": ["小红书", "都不太用"]}, {"platforms": []},
                   {"platforms": ["脸书"]}, {"followers": "很多"}, {"hours": "200"}, {"preference": "1"}):
        status, page = await post(bot, "/m/koc", {**FORM, **change})
        assert status == 400 and notice(page), change
    assert await applications(bot, "k4") == []


async def test_a_screening_begun_in_chat_ends_when_the_form_is_sent(bot: SandboxClient) -> None:
    await bot.say("k5", "申请KOC")
    await bot.say("k5", "1")  # in the middle of the chat screening
    await bot.open_member_center("k5", "/m/koc")
    await post(bot, "/m/koc", FORM)
    # The chat screening is over: the next message is an ordinary one, no second application.
    assert "你参加过我们的社群活动吗" not in (await bot.say("k5", "空气炸锅"))[0]["text"]
    assert len(await applications(bot, "k5")) == 1


async def test_the_operator_decides_and_the_page_shows_it(bot: SandboxClient) -> None:
    await bot.open_member_center("k6", "/m/koc")
    await post(bot, "/m/koc", FORM)
    assert "已通过" in (await bot.say("op1", "/koc approve k6 内容官"))[0]["text"]
    page = await bot.member_page("/m/koc")
    assert "已通过" in page and "内容官" in page and "再次申请" in page
    assert "已通过：内容官" in await bot.member_page("/m/me")
    # Applying again after a decision is allowed (as in chat); a rejection shows its reason.
    await post(bot, "/m/koc", FORM)
    await bot.say("op1", "/koc reject k6 粉丝数不足")
    page = await bot.member_page("/m/koc")
    assert "未通过" in page and "粉丝数不足" in page


# -- safety --------------------------------------------------------------------------------------

async def test_every_form_needs_the_sessions_csrf_token(bot: SandboxClient) -> None:
    await bot.open_member_center("s1", "/m/me")
    for path, form in (("/m/me/profile", PROFILE), ("/m/me/consent", {"consent": "1"}),
                       ("/m/me/phone", {"phone": "13812345678"}), ("/m/me/phone/remove", {}), ("/m/koc", FORM)):
        resp = await bot.http.post(path, data={**form, "csrf": "forged"})
        assert resp.status == 403, path
        resp = await bot.http.post(path, data=form)
        assert resp.status == 403, path
    m = await member(bot, "s1")
    assert m.attributes == {} and await applications(bot, "s1") == []


async def test_pages_need_a_session_and_show_only_ones_own_data(bot: SandboxClient) -> None:
    await bot.open_member_center("s2", "/m/me")
    await post(bot, "/m/me/phone", {"phone": "13812345678"})
    await bot.open_member_center("s3", "/m/me")
    assert "138****5678" not in await bot.member_page("/m/me")  # s2's number is not s3's page
    bot.http.session.cookie_jar.clear()
    assert (await bot.http.get("/m/me")).status == 401
    assert (await bot.http.post("/m/me/phone", data={"phone": "13812345678", "csrf": "x"})).status == 401


async def test_on_a_phone_a_member_binds_a_number_and_applies_without_overflow(
    bot: SandboxClient, browser: Any, tmp_path: Path,
) -> None:
    await bot.say("b1", "签到", chat="g1", name="一个名字很长很长很长很长很长很长很长很长很长很长的会员")
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                        device_scale_factor=2)
    page = await context.new_page()
    await page.goto(str(bot.http.make_url("/m/?as=b1")))
    await page.goto(str(bot.http.make_url("/m/me")))
    await page.fill("input[name=phone]", "139 0000 1111")
    await page.tap("button:has-text('绑定')")
    await page.wait_for_selector("text=已绑定 139****1111")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await page.screenshot(path=str(tmp_path / "me.png"), full_page=True)
    await page.tap("a:has-text('KOC 申请')")
    for choice in ("买过/用过", "偶尔参加", "小红书", "推荐好物带货"):
        await page.tap(f"label:has-text('{choice}')")
    await page.fill("input[name=product]", "净水器")
    await page.fill("input[name=followers]", "1.2万")
    await page.fill("input[name=hours]", "3")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await page.tap("button:has-text('提交申请')")
    await page.wait_for_selector("text=待审核")
    await page.screenshot(path=str(tmp_path / "koc.png"), full_page=True)
    await context.close()
    [application] = await applications(bot, "b1")
    # 25 bought + 10 sometimes + 5 one platform + 20 over 10,000 followers + 5 three hours.
    assert (application.score, application.recommended_type) == (65, "带货官")


def test_no_onboarding_question_may_take_the_bound_numbers_place() -> None:
    with pytest.raises(ValidationError, match="phone"):
        OnboardingConfig.model_validate({"questions": [{"key": "phone", "text": "手机号？"}]})


async def test_applying_on_the_page_counts_as_screened_for_the_invitation_of_the_active(
    make_config: Any, clock: Any,
) -> None:
    async with sandbox_app(make_config(koc={"activity_threshold": 2}), clock=clock) as bot:
        await bot.open_member_center("k7", "/m/me")
        await post(bot, "/m/koc", FORM)
        await bot.say("k7", "你好")
        replies = await bot.say("k7", "在吗")  # the threshold: a member never screened is invited here
        said = "\n".join(r["text"] for r in replies)
        assert "你购买或使用过我们的产品吗" not in said and "正在审核中" not in said, said
        assert len(await applications(bot, "k7")) == 1
