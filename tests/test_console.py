"""The operators' console over HTTP, as a browser without scripts uses it: signing in, CSRF,
roles, the pages and their numbers, deciding KOC applications and settling redemptions."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage.models import AuditEntry, KocApplication, Member, Redemption

PASSWORD = "operator-password-1"
USERS = [{"name": "ops", "password": PASSWORD, "role": "operator"},
         {"name": "look", "password": "viewer-password-1", "role": "viewer"},
         {"name": "boss", "password": "admin-password-12", "role": "admin"}]
KOC_ANSWERS = ["1", "空气炸锅，去年双11", "1", "1 2", "5000", "3", "6"]  # recommended 体验官


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def sign_in(bot: SandboxClient, name: str = "ops", password: str = PASSWORD) -> str:
    """Sign in as a browser does (a fresh one: no cookies); the CSRF token of the session's forms."""
    bot.http.session.cookie_jar.clear()
    page = await bot.http.get("/console/login")
    resp = await bot.http.post("/console/login", data={"name": name, "password": password,
                                                       "csrf": csrf_of(await page.text()), "next": "/console"},
                               allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return csrf_of(await (await bot.http.get("/console")).text())


@pytest.fixture
async def console(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(console={"users": USERS, "secret": "s" * 32},
                         rewards=[{"name": "帆布袋", "cost": 10, "stock": 5}])
    async with sandbox_app(config, clock=clock) as bot:
        yield bot


async def apply_for_koc(bot: SandboxClient, who: str) -> int:
    await bot.say(who, "申请KOC", name=f"达人{who}")
    for answer in KOC_ANSWERS:
        await bot.say(who, answer)
    async with bot.db.read() as s:
        return (await s.execute(select(KocApplication.id).join(Member, Member.id == KocApplication.member_id)
                                .where(Member.external_id == who))).scalar_one()


async def test_pages_need_a_sign_in_and_a_wrong_password_is_refused(console: SandboxClient) -> None:
    resp = await console.http.get("/console/groups?sort=members", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/console/login?next=")
    page = await console.http.get("/console/login")
    resp = await console.http.post("/console/login", data={"name": "ops", "password": "wrong-password-x",
                                                           "csrf": csrf_of(await page.text())})
    assert resp.status == 401 and "用户名或密码不对" in await resp.text()
    assert (await console.http.get("/console", allow_redirects=False)).status == 302


async def test_guessing_passwords_stops_after_ten_failures(console: SandboxClient) -> None:
    for _ in range(10):
        page = await console.http.get("/console/login")
        resp = await console.http.post("/console/login", data={"name": "ops", "password": "guess-guess-guess",
                                                               "csrf": csrf_of(await page.text())})
        assert resp.status == 401
    page = await console.http.get("/console/login")
    resp = await console.http.post("/console/login", data={"name": "ops", "password": PASSWORD,
                                                           "csrf": csrf_of(await page.text())})
    assert resp.status == 429 and "15 分钟" in await resp.text()  # even the right password, for a while


async def test_sign_in_goes_back_to_the_page_asked_for_but_never_to_another_site(console: SandboxClient) -> None:
    page = await console.http.get("/console/login")
    resp = await console.http.post("/console/login", data={"name": "ops", "password": PASSWORD,
                                                           "csrf": csrf_of(await page.text()),
                                                           "next": "https://evil.example/console"},
                                   allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/console"


async def test_a_form_without_the_csrf_token_is_refused(console: SandboxClient) -> None:
    application = await apply_for_koc(console, "k1")
    page = await console.http.get("/console/login")
    login = {"name": "ops", "password": PASSWORD}
    assert (await console.http.post("/console/login", data=login)).status == 403  # no token on the sign-in form
    await console.http.post("/console/login", data={**login, "csrf": csrf_of(await page.text())})
    resp = await console.http.post(f"/console/koc/{application}", data={"decision": "approve", "type": "体验官"})
    assert resp.status == 403 and "CSRF" in await resp.text()
    resp = await console.http.post(f"/console/koc/{application}", data={"decision": "approve", "csrf": "forged"})
    assert resp.status == 403
    async with console.db.read() as s:
        assert (await s.get(KocApplication, application)).status == "pending"  # type: ignore[union-attr]


async def test_an_operator_approves_a_koc_with_a_type_and_the_member_is_told(console: SandboxClient) -> None:
    application = await apply_for_koc(console, "k2")
    csrf = await sign_in(console)
    queue = await (await console.http.get("/console/koc")).text()
    assert f'id="application-{application}"' in queue and "达人k2" in queue
    resp = await console.http.post(f"/console/koc/{application}",
                                   data={"decision": "approve", "type": "内容官", "csrf": csrf})
    assert resp.status == 200 and "已通过（内容官）" in await resp.text()
    async with console.db.read() as s:
        decided = await s.get(KocApplication, application)
        assert decided is not None and (decided.status, decided.approved_type, decided.decided_by) == (
            "approved", "内容官", "console:ops")
        assert (await s.execute(select(AuditEntry.actor)
                                .where(AuditEntry.action == "koc.approve"))).scalar_one() == "console:ops"
    assert "内容官" in (await console.outbox(to="k2"))[-1]["text"]
    # The same form again: nothing changes, and the operator is told so.
    again = await console.http.post(f"/console/koc/{application}",
                                    data={"decision": "approve", "type": "分享官", "csrf": csrf})
    assert "已被处理过" in await again.text()


async def test_a_rejection_needs_a_reason_and_a_viewer_cannot_decide(console: SandboxClient) -> None:
    application = await apply_for_koc(console, "k3")
    csrf = await sign_in(console, "look", "viewer-password-1")
    assert "只读" in await (await console.http.get("/console/koc")).text()
    resp = await console.http.post(f"/console/koc/{application}",
                                   data={"decision": "reject", "reason": "x", "csrf": csrf})
    assert resp.status == 403
    csrf = await sign_in(console)
    resp = await console.http.post(f"/console/koc/{application}", data={"decision": "reject", "csrf": csrf})
    assert resp.status == 400 and "理由" in await resp.text()
    resp = await console.http.post(f"/console/koc/{application}",
                                   data={"decision": "reject", "reason": "粉丝太少", "csrf": csrf})
    assert resp.status == 200
    assert "粉丝太少" in (await console.outbox(to="k3"))[-1]["text"]


async def test_an_operator_fulfils_and_cancels_redemptions(console: SandboxClient) -> None:
    for who in ("r1", "r2"):
        await console.say(who, "签到")
        await console.say(who, "兑换 1")
        await console.say(who, "确认")
    csrf = await sign_in(console)
    async with console.db.read() as s:
        first, second = (await s.execute(select(Redemption.id).order_by(Redemption.id))).scalars().all()
    assert f'id="redemption-{first}"' in await (await console.http.get("/console/rewards")).text()
    await console.http.post(f"/console/redemptions/{first}", data={"action": "fulfil", "csrf": csrf})
    await console.http.post(f"/console/redemptions/{second}", data={"action": "reject", "csrf": csrf})
    async with console.db.read() as s:
        assert [r.status for r in (await s.execute(select(Redemption).order_by(Redemption.id))).scalars()] == [
            "fulfilled", "cancelled"]
    resp = await console.http.post(f"/console/redemptions/{first}", data={"action": "reject", "csrf": csrf})
    assert "未做改动" in await resp.text()  # fulfilled stays fulfilled


async def test_every_page_renders_and_bad_parameters_get_a_clear_400(console: SandboxClient) -> None:
    await console.say("m1", "签到", chat="g1", name="小美")
    csrf = await sign_in(console)
    assert (await console.http.post("/console/refresh", data={"csrf": csrf})).status == 200
    async with console.db.read() as s:
        member_id = (await s.execute(select(Member.id).where(Member.external_id == "m1"))).scalar_one()
    for path in ("/console", "/console/groups", "/console/groups?sort=members&desc=1&q=g", "/console/members?q=m1",
                 f"/console/members/{member_id}", "/console/koc", "/console/rewards", "/console/broadcasts"):
        resp = await console.http.get(path)
        assert resp.status == 200, path
    assert "小美" in await (await console.http.get("/console/members?q=小")).text()
    assert "签到" in await (await console.http.get(f"/console/members/{member_id}")).text()
    for path in ("/console?from=2026-13-01", "/console?from=2026-11-30&to=2026-11-01", "/console/groups?sort=drop",
                 "/console/groups?page=0"):
        resp = await console.http.get(path)
        assert resp.status == 400 and "<html" in await resp.text(), path
    assert (await console.http.get("/console/members/999999")).status == 404
    assert (await console.http.get("/console/audit")).status == 403  # operators do not read the audit log
    await sign_in(console, "boss", "admin-password-12")
    audit_page = await (await console.http.get("/console/audit")).text()
    assert "刷新统计" in audit_page and "console.refresh" not in audit_page  # the action in the operators' words
