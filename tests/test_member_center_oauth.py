"""Signing in to the member center with WeCom's web authorization, over HTTP against the fake
WeCom: a customer, a staff member and a WeChat user who is not a customer; a bad, a replayed
or an expired code; a stale state, one from another browser, a forged one; WeCom unreachable;
where the member comes back to (never another site); and the config that makes it possible."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientResponse
from conftest import WECOM_CORP, wecom_section
from sqlalchemy import select

from bot.appkeys import CHANNELS
from bot.builtin import config_from_dict
from bot.channels.wecom.channel import WeComChannel
from bot.config import Config, ConfigError
from bot.member_center import auth
from bot.member_center.oauth import OAUTH_COOKIE, STATE_SALT
from bot.testing import FakeClock, SandboxClient, sandbox_app
from bot.testing.fake_wecom import FakeWeCom
from storage import member_sessions
from storage.models import Member

PUBLIC = "http://127.0.0.1:8080"
AUTHORIZE = "https://open.weixin.qq.com/connect/oauth2/authorize"
Make = Callable[..., AbstractAsyncContextManager[SandboxClient]]


@pytest.fixture
async def bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> AsyncIterator[SandboxClient]:
    config = make_config(wecom=wecom_section(fake.base_url), server={"public_url": PUBLIC},
                         scheduler={"enabled": False})
    fake.oauth_agent_id = 1000002
    async with sandbox_app(config, clock=clock) as client:
        yield client


async def leave(bot: SandboxClient, path: str = "/m/") -> str:
    """Open ``path`` on a browser without a session: where siyu sends it (WeCom's authorize page)."""
    resp = await bot.http.get(path, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return resp.headers["Location"]


async def come_back(bot: SandboxClient, url: str) -> ClientResponse:
    """WeCom sends the browser back to ``url`` (public_url/m/oauth?code=&state=): this server."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC and parts.path == "/m/oauth", url
    return await bot.http.get(f"{parts.path}?{parts.query}", allow_redirects=False)


async def signed_in_as(bot: SandboxClient) -> Member | None:
    cookie = {c.key: c.value for c in bot.http.session.cookie_jar}.get(auth.COOKIE)
    if cookie is None:
        return None
    resp = await bot.http.get("/m/", allow_redirects=False)
    if resp.status != 200:
        return None
    sid = bot.app[auth.SIGNER].loads(cookie)["s"]
    async with bot.db.read() as s:
        return await member_sessions.member_of(s, sid, now=bot.dispatcher.clock.now())


async def member(bot: SandboxClient, external_id: str) -> Member | None:
    async with bot.db.read() as s:
        return (await s.execute(select(Member).where(Member.external_id == external_id))).scalar_one_or_none()


def state_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["state"][0]


async def test_a_customer_taps_through_wecom_and_lands_signed_in_where_they_were_going(
    bot: SandboxClient, fake: FakeWeCom,
) -> None:
    location = await leave(bot, "/m/?from=card")
    state = state_of(location)
    assert location == (f"{AUTHORIZE}?appid={WECOM_CORP}&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fm%2Foauth"
                        f"&response_type=code&scope=snsapi_base&state={state}&agentid=1000002#wechat_redirect")
    assert len(state) == 32 and state.isalnum()
    back = await come_back(bot, fake.authorize(location, external_userid="wmCustomer1"))
    assert back.status == 302 and back.headers["Location"] == "/m/?from=card"
    [session] = [c for c in back.headers.getall("Set-Cookie") if c.startswith(auth.COOKIE + "=")]
    assert "HttpOnly" in session and "SameSite=Lax" in session
    who = await signed_in_as(bot)
    assert who is not None and (who.channel, who.external_id) == ("wecom", "wmCustomer1")  # created: unknown before
    [call] = fake.calls("auth/getuserinfo")
    assert call.query["code"].startswith("CODE") and call.query["access_token"]


@pytest.mark.parametrize(("identity", "expected"), [
    ({"userid": "zhangsan"}, "zhangsan"),
    ({"userid": "lisi", "legacy": True}, "lisi"),  # {"UserId": "lisi", "DeviceId": ...}
    ({"external_userid": "wmOld", "legacy": True}, "wmOld"),  # {"OpenId": ..., "external_userid": ...}
])
async def test_staff_and_older_answers_sign_in_as_their_wecom_identity(
    bot: SandboxClient, fake: FakeWeCom, identity: dict[str, Any], expected: str,
) -> None:
    back = await come_back(bot, fake.authorize(await leave(bot), **identity))
    assert back.status == 302 and back.headers["Location"] == "/m/"
    who = await signed_in_as(bot)
    assert who is not None and (who.channel, who.external_id) == ("wecom", expected)


async def test_a_known_customer_is_the_same_member_as_in_chat(bot: SandboxClient, fake: FakeWeCom) -> None:
    async with bot.db.transaction() as s:
        s.add(Member(channel="wecom", external_id="wmKnown", name="老客户", first_seen_at=bot.dispatcher.clock.now(),
                     last_seen_at=bot.dispatcher.clock.now()))
    await come_back(bot, fake.authorize(await leave(bot), external_userid="wmKnown"))
    assert "老客户" in await bot.member_page("/m/")
    async with bot.db.read() as s:
        assert len((await s.execute(select(Member).where(Member.external_id == "wmKnown"))).all()) == 1


async def test_a_wechat_user_who_is_not_a_customer_is_asked_to_add_the_brand(
    bot: SandboxClient, fake: FakeWeCom,
) -> None:
    resp = await come_back(bot, fake.authorize(await leave(bot), openid="oStranger"))
    page = await resp.text()
    assert resp.status == 403 and "请先添加品牌账号" in page and "<img" not in page  # no picture configured
    assert await signed_in_as(bot) is None
    assert await member(bot, "oStranger") is None  # nobody is created for them
    assert (await bot.http.get("/m/", allow_redirects=False)).status == 302  # still no session


@pytest.fixture
async def make_bot(make_config: Callable[..., Config], fake: FakeWeCom, clock: FakeClock) -> Make:
    def make(**sections: Any) -> AbstractAsyncContextManager[SandboxClient]:
        config = make_config(wecom=wecom_section(fake.base_url), scheduler={"enabled": False}, **sections)
        return sandbox_app(config, clock=clock)
    return make


async def test_the_add_contact_page_shows_the_channel_codes_picture(
    make_bot: Make, fake: FakeWeCom, tmp_path: Path,
) -> None:
    async with make_bot(server={"public_url": PUBLIC},
                        member_center={"add_contact_qr_url": "https://cdn.example.com/qr/brand.png"}) as bot:
        resp = await come_back(bot, fake.authorize(await leave(bot), openid="oStranger"))
        page = await resp.text()
        assert '<img class="qr" src="https://cdn.example.com/qr/brand.png"' in page and "长按识别" in page
        # The page's policy lets that site's picture in, and no other site.
        assert "img-src 'self' https://cdn.example.com data:" in resp.headers["Content-Security-Policy"]
    picture = tmp_path / "brand.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    async with make_bot(server={"public_url": PUBLIC}, member_center={"add_contact_qr_url": str(picture)}) as bot:
        resp = await come_back(bot, fake.authorize(await leave(bot), openid="oStranger"))
        assert '<img class="qr" src="/m/contact-qr"' in await resp.text()
        served = await bot.http.get("/m/contact-qr")
        assert served.status == 200 and await served.read() == picture.read_bytes()
        assert served.content_type == "image/png"


async def test_a_bad_code_is_a_friendly_page_and_uses_up_the_state(
    bot: SandboxClient, fake: FakeWeCom, caplog: pytest.LogCaptureFixture,
) -> None:
    location = await leave(bot, "/m/?from=g1")
    state = state_of(location)
    with caplog.at_level(logging.WARNING, logger="siyu.member_center.oauth"):
        resp = await bot.http.get("/m/oauth", params={"code": "NOT-A-CODE", "state": state}, allow_redirects=False)
    page = await resp.text()
    assert resp.status == 400 and "登录凭证已经失效" in page and 'href="/m/?from=g1"' in page  # open it again
    assert "40029" in caplog.text
    assert await signed_in_as(bot) is None
    # The state went with that attempt: a good code with it is refused, and WeCom is not asked.
    good = fake.oauth_code(external_userid="wmA")
    resp = await bot.http.get("/m/oauth", params={"code": good, "state": state}, allow_redirects=False)
    assert resp.status == 400 and "登录链接已经失效" in await resp.text()
    assert len(fake.calls("auth/getuserinfo")) == 1


async def test_a_replayed_code_or_link_signs_nobody_in(bot: SandboxClient, fake: FakeWeCom) -> None:
    url = fake.authorize(await leave(bot), external_userid="wmA")
    assert (await come_back(bot, url)).status == 302
    code = parse_qs(urlsplit(url).query)["code"][0]
    # The same link again, in the same browser: its state was used.
    bot.http.session.cookie_jar.clear()
    resp = await come_back(bot, url)
    assert resp.status == 400 and "登录链接已经失效" in await resp.text()
    # The used code with a fresh state of this browser: WeCom takes a code once (40029).
    fresh = state_of(await leave(bot))
    resp = await bot.http.get("/m/oauth", params={"code": code, "state": fresh}, allow_redirects=False)
    assert resp.status == 400 and "登录凭证已经失效" in await resp.text()
    assert await signed_in_as(bot) is None


async def test_a_stale_state_is_refused_without_asking_wecom(
    bot: SandboxClient, fake: FakeWeCom, clock: FakeClock,
) -> None:
    location = await leave(bot)
    clock.advance(seconds=11 * 60)  # ten minutes to tap through
    resp = await come_back(bot, fake.authorize(location, external_userid="wmLate"))
    page = await resp.text()
    assert resp.status == 400 and "登录链接已经失效" in page and 'href="/m/"' in page
    assert fake.calls("auth/getuserinfo") == [] and await member(bot, "wmLate") is None


async def test_a_state_from_another_browser_or_forged_is_refused(bot: SandboxClient, fake: FakeWeCom) -> None:
    others_link = fake.authorize(await leave(bot), external_userid="wmA")  # started in browser A
    bot.http.session.cookie_jar.clear()  # browser B: its own state, not A's
    await leave(bot)
    resp = await come_back(bot, others_link)
    assert resp.status == 400 and await signed_in_as(bot) is None
    # A cookie holding that state but not signed by this siyu.
    bot.http.session.cookie_jar.update_cookies({OAUTH_COOKIE: "W1siYWJjIiwiL20vIiwxXV0.forged.sig"})
    resp = await come_back(bot, others_link)
    assert resp.status == 400 and await signed_in_as(bot) is None
    assert fake.calls("auth/getuserinfo") == []
    # A browser's own link works.
    bot.http.session.cookie_jar.clear()
    own = await leave(bot)
    assert (await come_back(bot, fake.authorize(own, external_userid="wmB"))).status == 302


async def test_links_opened_in_several_tabs_each_sign_in(bot: SandboxClient, fake: FakeWeCom) -> None:
    first, second = await leave(bot, "/m/?tab=1"), await leave(bot, "/m/?tab=2")
    resp = await come_back(bot, fake.authorize(first, external_userid="wmTabs"))
    assert resp.headers["Location"] == "/m/?tab=1"
    resp = await come_back(bot, fake.authorize(second, external_userid="wmTabs"))
    assert resp.status == 302 and resp.headers["Location"] == "/m/?tab=2"


@pytest.mark.parametrize("target", ["https://evil.example.com/", "//evil.example.com/m/", "/m/\\evil.example.com",
                                    "/console", "javascript:alert(1)"])
async def test_the_page_to_come_back_to_is_never_another_site(
    bot: SandboxClient, fake: FakeWeCom, target: str,
) -> None:
    # Even a cookie this siyu signed (a bug elsewhere, an old version) cannot send a member away.
    state = "a" * 32
    cookie = bot.app[auth.SIGNER].dumps([[state, target, bot.dispatcher.clock.now().timestamp()]], salt=STATE_SALT)
    bot.http.session.cookie_jar.update_cookies({OAUTH_COOKIE: cookie})
    code = fake.oauth_code(external_userid="wmRedirect")
    resp = await bot.http.get("/m/oauth", params={"code": code, "state": state}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/m/"


async def test_an_expired_token_is_renewed_and_the_member_signs_in(bot: SandboxClient, fake: FakeWeCom) -> None:
    url = fake.authorize(await leave(bot), external_userid="wmToken")
    channel = bot.app[CHANNELS]["wecom"]
    assert isinstance(channel, WeComChannel) and channel.api.tokens is not None
    await channel.api.tokens.get()  # a token siyu holds ...
    fake.expire_tokens()  # 42001, as WeCom may do at any time
    assert (await come_back(bot, url)).status == 302
    assert len(fake.calls("auth/getuserinfo")) == 2 and (await signed_in_as(bot)) is not None


@pytest.mark.parametrize(("failure", "log_says"), [
    ("lost", "unreachable"), (50001, "可信域名"), (60020, "企业可信IP"), (48002, "48002")])
async def test_wecom_failing_is_a_page_never_a_5xx(
    bot: SandboxClient, fake: FakeWeCom, caplog: pytest.LogCaptureFixture, failure: object, log_says: str,
) -> None:
    if failure == "lost":
        fake.lose_answers("auth/getuserinfo")
    else:
        assert isinstance(failure, int)
        fake.fail("auth/getuserinfo", failure)
    with caplog.at_level(logging.WARNING, logger="siyu.member_center.oauth"):
        resp = await come_back(bot, fake.authorize(await leave(bot), external_userid="wmA"))
    assert resp.status == 200 and "暂时无法登录" in await resp.text()
    assert log_says in caplog.text
    assert len(fake.calls("auth/getuserinfo")) == 1  # a code is not tried twice: WeCom may have taken it
    assert await signed_in_as(bot) is None


@pytest.mark.parametrize("query", [{}, {"code": "x"}, {"state": "a" * 32}, {"code": "x", "state": "a-b"},
                                   {"code": "x" * 600, "state": "a" * 32}, {"code": "x", "state": "a" * 129}])
async def test_a_return_without_usable_code_and_state_is_refused(bot: SandboxClient, query: dict[str, str]) -> None:
    resp = await bot.http.get("/m/oauth", params=query, allow_redirects=False)
    assert resp.status == 400 and "登录链接已经失效" in await resp.text()


async def test_the_sandbox_still_signs_in_with_as_on_this_machine(bot: SandboxClient) -> None:
    await bot.open_member_center("u1")
    who = await signed_in_as(bot)
    assert who is not None and (who.channel, who.external_id) == ("sandbox", "u1")


async def test_cookies_are_secure_when_the_public_url_is_https(make_bot: Make) -> None:
    async with make_bot(server={"public_url": "https://club.example.com"}) as bot:
        resp = await bot.http.get("/m/", allow_redirects=False)
        assert "redirect_uri=https%3A%2F%2Fclub.example.com%2Fm%2Foauth" in resp.headers["Location"]
        [cookie] = [c for c in resp.headers.getall("Set-Cookie") if c.startswith(OAUTH_COOKIE)]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/m" in cookie


WECOM_ON = {"enabled": True, "corp_id": "ww1", "agent_id": 1000002, "secret": "s", "token": "t",
            "encoding_aes_key": "a" * 43}


def test_wecom_with_the_member_center_needs_a_public_url() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"wecom": WECOM_ON}, env={})
    assert "[server] public_url is required" in str(info.value) and "可信域名" in str(info.value)
    assert config_from_dict({"wecom": WECOM_ON, "member_center": {"enabled": False}}, env={})
    assert config_from_dict({"wecom": WECOM_ON, "server": {"public_url": "https://club.example.com"}}, env={})
    with pytest.raises(ConfigError, match="need https"):
        config_from_dict({"wecom": WECOM_ON, "server": {"public_url": "http://club.example.com"}}, env={})
    with pytest.raises(ConfigError, match="without a path"):  # the session cookie is for /m, not /club/m
        config_from_dict({"wecom": WECOM_ON, "server": {"public_url": "https://example.com/club"}}, env={})


def test_the_add_contact_picture_is_an_https_address_or_a_picture_file(tmp_path: Path) -> None:
    for bad, says in (("http://cdn.example.com/qr.png", "https"), ("qr.txt", "picture file"),
                      (str(tmp_path / "missing.png"), "no such file")):
        with pytest.raises(ConfigError, match=says):
            config_from_dict({"member_center": {"add_contact_qr_url": bad}}, env={})
    assert config_from_dict({"wecom": {"oauth_base_url": "http://127.0.0.1:9/x"}}, env={}).wecom.oauth_base_url \
        == "http://127.0.0.1:9/x/"
