"""The WeCom API client against the fake WeCom server (wecom.md §3, §4).

Token handling (one fetch, shared through the database, refreshed ahead of expiry, refreshed once
when refused), the retry rules per error code, timeouts, the request bodies of the endpoints siyu
uses, and that the access token and the secret stay out of errors and logs. The token cache runs
on the test database (SQLite, or PostgreSQL with ``SIYU_TEST_DATABASE_URL``); its clock is a
FakeClock, while the fake server expires tokens only when told to.
"""
from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from bot.channels.wecom import api as api_module
from bot.channels.wecom.api import NETWORK, WeComAPI, WeComError
from bot.channels.wecom.tokens import REFRESH_MARGIN, TokenCache, cache_key
from bot.testing import FakeClock
from bot.testing.fake_wecom import FakeWeCom
from storage.engine import Database
from storage.models import AccessToken

SEND = "message/send"
BODY = {"touser": "u1", "agentid": 1000002, "msgtype": "text", "text": {"content": "hi"}, "safe": 0}
TOKEN_RE = re.compile(r"^token-\d+$")

MakeAPI = Callable[..., WeComAPI]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make_api(http: aiohttp.ClientSession, wecom: FakeWeCom, db: Database, clock: FakeClock) -> MakeAPI:
    """A WeComAPI with its own TokenCache: each one stands for a process (``database`` lets it
    use its own engine on the same database)."""

    def make(*, secret: str | None = None, timeout_s: float = 5.0, attempts: int = 3, backoff_s: float = 0.01,
             database: Database | None = None) -> WeComAPI:
        secret = wecom.secret if secret is None else secret
        api = WeComAPI(http, base_url=wecom.base_url, corp_id=wecom.corp_id, secret=secret,
                       timeout_s=timeout_s, attempts=attempts, backoff_s=backoff_s)
        api.tokens = TokenCache(database or db, clock, cache_key(wecom.corp_id, secret), api.fetch_token)
        return api

    return make


@pytest.fixture
def api(make_api: MakeAPI) -> WeComAPI:
    return make_api()


@pytest.fixture
async def second_db(database_url: str, db: Database) -> AsyncIterator[Database]:
    """Another engine on the same database, as a second process would have."""
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


def gettokens(wecom: FakeWeCom) -> int:
    return len(wecom.calls("gettoken"))


def used_tokens(wecom: FakeWeCom, endpoint: str = SEND) -> list[str]:
    return [r.query["access_token"] for r in wecom.calls(endpoint)]


def issued_tokens(wecom: FakeWeCom) -> set[str]:
    return {r.query["access_token"] for r in wecom.requests if "access_token" in r.query}


async def stored_tokens(db: Database) -> list[tuple[str, str, Any]]:
    async with db.read() as session:
        rows = (await session.execute(select(AccessToken.key, AccessToken.token, AccessToken.expires_at))).all()
    return [tuple(row) for row in rows]


# -- the token: fetched once, shared, refreshed ahead of expiry ------------------------------


async def test_first_call_fetches_a_token_and_later_calls_reuse_it(api: WeComAPI, wecom: FakeWeCom, db: Database,
                                                                   clock: FakeClock) -> None:
    assert gettokens(wecom) == 0
    await api.call(SEND, BODY)
    assert gettokens(wecom) == 1
    gettoken = wecom.calls("gettoken")[0]
    assert gettoken.query == {"corpid": wecom.corp_id, "corpsecret": wecom.secret}
    for _ in range(4):
        await api.call(SEND, BODY)
    assert gettokens(wecom) == 1
    tokens = used_tokens(wecom)
    assert len(tokens) == 5 and len(set(tokens)) == 1 and TOKEN_RE.match(tokens[0])
    # Stored for the other processes, under a key that holds no secret, with the platform's expiry.
    [(key, token, expires_at)] = await stored_tokens(db)
    assert key == cache_key(wecom.corp_id, wecom.secret)
    assert wecom.secret not in key
    assert token == tokens[0]
    assert expires_at == clock.now() + timedelta(seconds=7200)


async def test_a_second_process_reuses_the_stored_token(make_api: MakeAPI, wecom: FakeWeCom,
                                                        second_db: Database) -> None:
    first = make_api()
    await first.call(SEND, BODY)
    assert gettokens(wecom) == 1
    second = make_api(database=second_db)  # empty memory, same database
    await second.call(SEND, BODY)
    await second.call(SEND, BODY)
    assert gettokens(wecom) == 1
    assert len(set(used_tokens(wecom))) == 1


async def test_twenty_concurrent_calls_on_a_cold_cache_fetch_one_token(api: WeComAPI, wecom: FakeWeCom) -> None:
    results = await asyncio.wait_for(asyncio.gather(*(api.call(SEND, BODY) for _ in range(20))), 30)
    assert all(r["errcode"] == 0 for r in results)
    assert gettokens(wecom) == 1
    assert len(wecom.calls(SEND)) == 20
    assert len(set(used_tokens(wecom))) == 1


async def test_two_processes_on_a_cold_cache_fetch_one_token(make_api: MakeAPI, wecom: FakeWeCom, second_db: Database,
                                                             on_postgres: bool) -> None:
    if not on_postgres:
        pytest.skip("SQLite serves one process: only PostgreSQL's advisory lock orders refreshes across processes")
    first, second = make_api(), make_api(database=second_db)
    calls = [a.call(SEND, BODY) for _ in range(10) for a in (first, second)]
    await asyncio.wait_for(asyncio.gather(*calls), 30)
    assert gettokens(wecom) == 1
    assert len(set(used_tokens(wecom))) == 1


async def test_token_refreshed_ahead_of_expiry(api: WeComAPI, wecom: FakeWeCom, db: Database, clock: FakeClock) -> None:
    await api.call(SEND, BODY)
    assert gettokens(wecom) == 1
    expires_at = clock.now() + timedelta(seconds=7200)
    margin = REFRESH_MARGIN.total_seconds()
    assert margin >= 60  # a real margin ahead of the platform's expiry
    clock.advance(7200 - margin - 1)  # one second before the refresh window
    await api.call(SEND, BODY)
    assert gettokens(wecom) == 1
    clock.advance(2)  # inside the window: the token still works, but is renewed now
    assert clock.now() < expires_at
    await api.call(SEND, BODY)
    assert gettokens(wecom) == 2
    first, _, third = used_tokens(wecom)
    assert third != first
    [(_, token, expires_at)] = await stored_tokens(db)
    assert token == third and expires_at == clock.now() + timedelta(seconds=7200)
    await api.call(SEND, BODY)
    assert gettokens(wecom) == 2


# -- a refused token: refreshed once, the call retried once ---------------------------------


@pytest.mark.parametrize("refuse, errcode", [("expire_tokens", 42001), ("revoke_tokens", 40014)])
async def test_refused_token_refreshed_once_and_call_retried(api: WeComAPI, wecom: FakeWeCom, db: Database,
                                                             refuse: str, errcode: int) -> None:
    await api.call(SEND, BODY)
    getattr(wecom, refuse)()
    result = await api.call(SEND, BODY)
    assert result["errcode"] == 0
    assert gettokens(wecom) == 2
    old, refused, retried = used_tokens(wecom)
    assert refused == old and retried != old
    [(_, token, _)] = await stored_tokens(db)
    assert token == retried
    await api.call(SEND, BODY)  # the new token is kept
    assert gettokens(wecom) == 2


async def test_concurrent_calls_with_a_revoked_token_refresh_once(api: WeComAPI, wecom: FakeWeCom) -> None:
    await api.call(SEND, BODY)
    wecom.revoke_tokens()
    results = await asyncio.wait_for(asyncio.gather(*(api.call(SEND, BODY) for _ in range(20))), 30)
    assert all(r["errcode"] == 0 for r in results)
    assert gettokens(wecom) == 2


async def test_another_process_refused_token_reuses_the_replacement(make_api: MakeAPI, wecom: FakeWeCom,
                                                                    second_db: Database) -> None:
    first, second = make_api(), make_api(database=second_db)
    await first.call(SEND, BODY)
    await second.call(SEND, BODY)
    assert gettokens(wecom) == 1
    wecom.revoke_tokens()
    await first.call(SEND, BODY)  # refreshes
    assert gettokens(wecom) == 2
    await second.call(SEND, BODY)  # refused, then finds first's new token in the database
    assert gettokens(wecom) == 2
    tokens = used_tokens(wecom)
    assert tokens[-1] == tokens[-3] != tokens[-2] == tokens[0]


async def test_wrong_secret_raises_40001_without_looping(make_api: MakeAPI, wecom: FakeWeCom, db: Database) -> None:
    bad = make_api(secret="not-the-secret")
    with pytest.raises(WeComError) as caught:
        await asyncio.wait_for(bad.call(SEND, BODY), 10)
    assert caught.value.errcode == 40001
    assert caught.value.retryable is False
    assert gettokens(wecom) == 1
    assert wecom.calls(SEND) == []
    assert "not-the-secret" not in str(caught.value) and wecom.secret not in str(caught.value)
    assert await stored_tokens(db) == []
    # Every later call asks once more, and fails the same way: bounded, no loop.
    with pytest.raises(WeComError):
        await asyncio.wait_for(bad.send_text(1000002, ["u1"], "hi"), 10)
    assert gettokens(wecom) == 2


@pytest.mark.parametrize("errcode", [40014, 42001, 40001])
async def test_endpoint_that_keeps_refusing_the_token_refreshes_once_then_fails(api: WeComAPI, wecom: FakeWeCom,
                                                                               errcode: int) -> None:
    wecom.fail(SEND, errcode, times=10)
    with pytest.raises(WeComError) as caught:
        await asyncio.wait_for(api.call(SEND, BODY), 10)
    assert caught.value.errcode == errcode
    assert caught.value.retryable is False
    assert caught.value.endpoint == SEND
    assert len(wecom.calls(SEND)) == 2
    assert gettokens(wecom) == 2  # the first token, and exactly one refresh


# -- retry rules per error code -------------------------------------------------------------


async def test_system_busy_retried_until_it_succeeds(api: WeComAPI, wecom: FakeWeCom) -> None:
    wecom.fail(SEND, -1, times=2)
    result = await api.call(SEND, BODY)
    assert result["errcode"] == 0
    assert len(wecom.calls(SEND)) == 3
    assert gettokens(wecom) == 1  # -1 is not a token problem


async def test_system_busy_gives_up_after_attempts(api: WeComAPI, wecom: FakeWeCom) -> None:
    wecom.fail(SEND, -1, times=5)
    with pytest.raises(WeComError) as caught:
        await api.call(SEND, BODY)
    assert caught.value.errcode == -1
    assert caught.value.retryable is True
    assert caught.value.retry_after is None
    assert len(wecom.calls(SEND)) == api.attempts == 3
    assert gettokens(wecom) == 1


async def test_system_busy_backs_off_exponentially(make_api: MakeAPI, wecom: FakeWeCom,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_module.random, "uniform", lambda a, b: 1.0)  # no jitter: 0.1 s, then 0.2 s
    api = make_api(backoff_s=0.1)
    wecom.fail(SEND, -1, times=2)
    await api.call(SEND, BODY)
    at = [r.at for r in wecom.calls(SEND)]
    assert len(at) == 3
    assert at[1] - at[0] >= 0.1
    assert at[2] - at[1] >= 0.2


@pytest.mark.parametrize("errcode", [45009, 45033])
async def test_rate_limit_not_retried_here_but_retryable_after_a_minute(api: WeComAPI, wecom: FakeWeCom,
                                                                        errcode: int) -> None:
    wecom.fail(SEND, errcode, times=3)
    with pytest.raises(WeComError) as caught:
        await api.call(SEND, BODY)
    assert caught.value.errcode == errcode
    assert caught.value.retryable is True
    assert caught.value.retry_after is not None and caught.value.retry_after >= 60
    assert len(wecom.calls(SEND)) == 1
    assert gettokens(wecom) == 1


@pytest.mark.parametrize("errcode", [40003, 48002, 60020, 81013])
async def test_content_and_permission_errors_not_retried(api: WeComAPI, wecom: FakeWeCom, errcode: int) -> None:
    wecom.fail(SEND, errcode, times=3)
    with pytest.raises(WeComError) as caught:
        await api.call(SEND, BODY)
    assert caught.value.errcode == errcode
    assert caught.value.retryable is False
    assert caught.value.retry_after is None
    assert len(wecom.calls(SEND)) == 1
    assert gettokens(wecom) == 1


async def test_slow_endpoint_retried_as_network_error_then_fails(make_api: MakeAPI, wecom: FakeWeCom) -> None:
    api = make_api(timeout_s=0.2)
    await api.call("externalcontact/groupchat/list", {"status_filter": 0, "limit": 10})  # a token first
    wecom.delay(SEND, 1.0)
    with pytest.raises(WeComError) as caught:
        await asyncio.wait_for(api.call(SEND, BODY), 10)
    error = caught.value
    assert error.errcode == NETWORK == -2
    assert error.retryable is True
    assert len(wecom.calls(SEND)) == api.attempts
    assert gettokens(wecom) == 1
    tokens = issued_tokens(wecom)
    assert tokens and all(TOKEN_RE.match(t) for t in tokens)
    shown = str(error) + repr(error) + "".join(traceback.format_exception(error))
    for secret in (*tokens, wecom.secret):
        assert secret not in shown


async def run_with_failures(make_api: MakeAPI, wecom: FakeWeCom) -> set[str]:
    """Calls through token expiry, revocation, -1, 40014, 45009, 48002, a timeout and a wrong
    secret; the tokens issued meanwhile."""
    api = make_api(timeout_s=0.2)
    await api.call(SEND, BODY)
    wecom.expire_tokens()
    await api.call(SEND, BODY)
    wecom.revoke_tokens()
    await api.call(SEND, BODY)
    wecom.fail(SEND, -1, times=2)
    await api.call(SEND, BODY)
    for errcode in (40014, 45009, 48002):
        wecom.fail(SEND, errcode, times=2)
        with pytest.raises(WeComError):
            await api.call(SEND, BODY)
    wecom.delay(SEND, 1.0)
    with pytest.raises(WeComError):
        await api.call(SEND, BODY)
    with pytest.raises(WeComError):
        await make_api(secret="bad-" + wecom.secret).call(SEND, BODY)
    tokens = issued_tokens(wecom)
    assert len(tokens) >= 4 and all(TOKEN_RE.match(t) for t in tokens)
    return tokens


def assert_not_logged(records: list[logging.LogRecord], secrets: set[str]) -> None:
    formatter = logging.Formatter("%(name)s %(message)s")
    for record in records:
        text = formatter.format(record)  # the message with its arguments, and any traceback
        for secret in secrets:
            assert secret not in text, f"{secret!r} logged by {record.name}: {text}"


# The fake's own web server logs its request lines (the real WeCom's log, not siyu's).
FAKE_SERVER_LOG = "aiohttp.access"


async def test_token_and_secret_never_logged(make_api: MakeAPI, wecom: FakeWeCom,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = await run_with_failures(make_api, wecom)
    records = [r for r in caplog.records if r.name != FAKE_SERVER_LOG and not r.name.startswith("aiosqlite")]
    assert any(r.name == "siyu.wecom.api" for r in records)  # the run did log its retries
    assert any(r.name == "siyu.wecom.token" for r in records)  # and its refused tokens
    assert_not_logged(records, {*tokens, wecom.secret})


async def test_token_not_logged_by_the_database_driver(make_api: MakeAPI, wecom: FakeWeCom,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = await run_with_failures(make_api, wecom)
    assert_not_logged([r for r in caplog.records if r.name != FAKE_SERVER_LOG], {*tokens, wecom.secret})


# -- the endpoints ------------------------------------------------------------------------------


async def test_groupchat_list_returns_the_fake_groups(api: WeComAPI, wecom: FakeWeCom) -> None:
    wecom.add_group("wr1", "owner1", ["u1", "wm1"])
    wecom.add_group("wr2", "owner2", ["u2"])
    chats = await api.groupchat_list()
    assert sorted(c["chat_id"] for c in chats) == ["wr1", "wr2"]
    [request] = wecom.calls("externalcontact/groupchat/list")
    assert request.body == {"status_filter": 0, "limit": 1000, "cursor": ""}
    await api.groupchat_list(["owner1"], limit=100)
    assert wecom.calls("externalcontact/groupchat/list")[-1].body == {
        "status_filter": 0, "limit": 100, "cursor": "", "owner_filter": {"userid_list": ["owner1"]}}


async def test_groupchat_list_follows_next_cursor(api: WeComAPI, wecom: FakeWeCom,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        wecom.add_group(f"wr{i}", "owner", ["u1"])

    def one_per_page(body: dict[str, Any]) -> Any:  # the fake, paginated: one group a page
        ids = sorted(wecom.groups)
        start = int(body.get("cursor") or 0)
        nxt = str(start + 1) if start + 1 < len(ids) else ""
        return wecom._answer(group_chat_list=[{"chat_id": ids[start], "status": 0}], next_cursor=nxt)

    monkeypatch.setattr(wecom, "_externalcontact_groupchat_list", one_per_page)
    chats = await asyncio.wait_for(api.groupchat_list(), 10)
    assert [c["chat_id"] for c in chats] == ["wr0", "wr1", "wr2"]
    assert [r.body["cursor"] for r in wecom.calls("externalcontact/groupchat/list")] == ["", "1", "2"]


async def test_groupchat_get_returns_owner_and_members(api: WeComAPI, wecom: FakeWeCom) -> None:
    wecom.add_group("wr1", "owner1", ["owner1", "u2", "wmCustomer"], name="VIP", version="v7")
    chat = await api.groupchat_get("wr1")
    assert chat["chat_id"] == "wr1" and chat["owner"] == "owner1" and chat["name"] == "VIP"
    assert [m["userid"] for m in chat["member_list"]] == ["owner1", "u2", "wmCustomer"]
    assert [m["type"] for m in chat["member_list"]] == [1, 1, 2]
    assert chat["member_version"] == "v7"
    assert wecom.calls("externalcontact/groupchat/get")[0].body == {"chat_id": "wr1", "need_name": 1}
    with pytest.raises(WeComError) as caught:
        await api.groupchat_get("wr-missing")
    assert caught.value.errcode == 40050 and caught.value.retryable is False


async def test_send_text_body(api: WeComAPI, wecom: FakeWeCom) -> None:
    result = await api.send_text(1000002, ["a", "b"], "你好")
    assert result["errcode"] == 0 and result["msgid"]
    body = wecom.calls(SEND)[0].body
    assert body is not None
    assert body["touser"] == "a|b"
    assert body["agentid"] == 1000002
    assert body["msgtype"] == "text"
    assert body["text"] == {"content": "你好"}
    assert body["safe"] == 0
    # WeCom's duplicate check compares content: it would drop a legitimate second "/help" answer.
    assert "enable_duplicate_check" not in body


async def test_send_welcome_msg_code_used_once_and_expired(api: WeComAPI, wecom: FakeWeCom) -> None:
    assert (await api.send_welcome_msg("code-1", "欢迎"))["errcode"] == 0
    body = wecom.calls("externalcontact/send_welcome_msg")[0].body
    assert body == {"welcome_code": "code-1", "text": {"content": "欢迎"}}
    with pytest.raises(WeComError) as used:
        await api.send_welcome_msg("code-1", "欢迎")
    assert used.value.errcode == 41051 and used.value.retryable is False
    with pytest.raises(WeComError) as expired:
        await api.send_welcome_msg("expired-code-2", "欢迎")
    assert expired.value.errcode == 41050 and expired.value.retryable is False
    assert len(wecom.calls("externalcontact/send_welcome_msg")) == 3  # neither retried


async def test_add_group_msg_template_body(api: WeComAPI, wecom: FakeWeCom) -> None:
    result = await api.add_group_msg_template("owner1", ["wr1", "wr2"], "活动通知")
    assert result["errcode"] == 0 and result["msgid"]
    assert wecom.calls("externalcontact/add_msg_template")[0].body == {
        "chat_type": "group", "sender": "owner1", "chat_id_list": ["wr1", "wr2"], "text": {"content": "活动通知"}}


async def test_cache_keys_hold_no_secret_and_differ_per_secret() -> None:
    a, b = cache_key("corp", "secret-a"), cache_key("corp", "secret-b")
    assert a != b and "secret-a" not in a and "secret-b" not in b
    assert a == cache_key("corp", "secret-a")


async def test_a_busy_token_fetch_is_retried_like_any_call(api: WeComAPI, wecom: FakeWeCom) -> None:
    wecom.fail("gettoken", -1, times=2)
    await api.call("message/send", {"touser": "a", "agentid": 1, "msgtype": "text", "text": {"content": "x"}})
    assert len(wecom.calls("gettoken")) == 3 and len(wecom.calls(SEND)) == 1
