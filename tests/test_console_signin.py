"""Who may stay signed in to the console: the sign-in throttle behind a reverse proxy (counted by
the client's address, which a client cannot forge) and its memory, and sessions kept in the
database, so signing out, expiry or a change of users in the config ends them in every process."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import func, select

from bot.appkeys import JOBS
from bot.config import Config
from bot.config.schema import ServerConfig
from bot.console.auth import SESSION_COOKIE, SignInThrottle
from bot.http import client_address
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage.sessions import ConsoleSession
from tests.test_config import keys_of, problems_of
from tests.test_console import PASSWORD, USERS, csrf_of, sign_in

SECRET = "s" * 32


def console_config(make_config: Callable[..., Config], users: list[dict[str, str]] = USERS,
                   **server: Any) -> Config:
    return make_config(console={"users": users, "secret": SECRET}, server=server)


async def attempt(bot: SandboxClient, password: str, forwarded_for: str | None = None) -> int:
    """One sign-in as ``ops`` through the form; the status of the answer."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    bot.http.session.cookie_jar.clear()
    page = await bot.http.get("/console/login", headers=headers)
    resp = await bot.http.post("/console/login", headers=headers, allow_redirects=False,
                               data={"name": "ops", "password": password, "csrf": csrf_of(await page.text())})
    return resp.status


def session_cookie(bot: SandboxClient) -> str:
    cookie = next(c for c in bot.http.session.cookie_jar if c.key == SESSION_COOKIE)
    return cookie.value


async def status_with(bot: SandboxClient, cookie: str, path: str = "/console/koc") -> int:
    """A GET of ``path`` by a browser holding only ``cookie`` (200, or 302 to the sign-in page)."""
    bot.http.session.cookie_jar.clear()
    resp = await bot.http.get(path, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}, allow_redirects=False)
    assert resp.status == 200 or resp.headers["Location"].startswith("/console/login"), resp.status
    return resp.status


# -- the client's address behind a proxy ----------------------------------------------------------


def test_the_client_is_the_right_most_forwarded_address_that_is_not_a_trusted_proxy() -> None:
    proxies = ServerConfig(trusted_proxies=["127.0.0.1", "10.0.0.0/8"]).proxy_networks

    def client(peer: str, *forwarded: str) -> str:
        request = make_mocked_request("GET", "/", headers=[("X-Forwarded-For", h) for h in forwarded])
        request = request.clone(remote=peer)
        return client_address(request, proxies)

    assert client("127.0.0.1", "203.0.113.9") == "203.0.113.9"
    # What the client wrote itself is left of what the proxies appended: ignored.
    assert client("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3") == "198.51.100.7"
    assert client("127.0.0.1", "6.6.6.6", "198.51.100.7") == "198.51.100.7"  # two headers: one list
    assert client("::ffff:127.0.0.1", "2001:DB8:0::1") == "2001:db8::1"  # the same address, one spelling
    assert client("127.0.0.1") == "127.0.0.1"  # the proxy's own request
    assert client("127.0.0.1", "not-an-address") == "127.0.0.1"  # garbage: the hop that passed it on
    assert client("192.0.2.1", "203.0.113.9") == "192.0.2.1"  # not a trusted proxy: the header is forged


def test_a_trusted_proxy_that_is_not_an_address_is_a_config_error_naming_the_key() -> None:
    problems = problems_of({"server": {"trusted_proxies": ["127.0.0.1", "localhost"]}})
    assert keys_of(problems) == ["server.trusted_proxies"] and "localhost" in problems[0][1]


# -- the sign-in throttle -------------------------------------------------------------------------


async def test_behind_a_trusted_proxy_each_client_is_throttled_on_its_own(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    async with sandbox_app(console_config(make_config, trusted_proxies=["127.0.0.1"]), clock=clock) as bot:
        # Eleven guessers, each from its own address (the test client is the proxy at 127.0.0.1).
        for i in range(11):
            assert await attempt(bot, "guess-guess-guess", f"6.6.6.6, 203.0.113.{i}") == 401
        assert await attempt(bot, PASSWORD, "198.51.100.7") == 302  # the real admin is not locked out
        for _ in range(9):
            assert await attempt(bot, "guess-guess-guess", "203.0.113.0") == 401
        assert await attempt(bot, PASSWORD, "203.0.113.0") == 429  # ten failures from one client: stopped


async def test_a_forged_forwarded_address_from_an_untrusted_peer_counts_against_the_peer(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    async with sandbox_app(console_config(make_config, trusted_proxies=["10.0.0.0/8"]), clock=clock) as bot:
        for i in range(10):
            assert await attempt(bot, "guess-guess-guess", f"203.0.113.{i}") == 401
        assert await attempt(bot, PASSWORD, "198.51.100.7") == 429


async def test_the_throttle_lets_an_address_try_again_after_its_window(
    make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    async with sandbox_app(console_config(make_config), clock=clock) as bot:
        for _ in range(10):
            assert await attempt(bot, "guess-guess-guess") == 401
        assert await attempt(bot, PASSWORD) == 429
        clock.advance(minutes=15, seconds=1)
        assert await attempt(bot, PASSWORD) == 302


def test_the_throttle_forgets_addresses_whose_failures_are_older_than_its_window() -> None:
    throttle = SignInThrottle(limit=10, window_s=900)
    for i in range(10_000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", now=1000.0 + i * 0.01)
    assert len(throttle) == 10_000
    for _ in range(50):
        throttle.failed("192.0.2.1", now=1500.0)
    assert throttle.blocked("192.0.2.1", now=1500.0)
    assert not throttle.blocked("198.51.100.1", now=1100.0 + 900)  # the 10,000's failures are now stale
    assert len(throttle) == 1  # only the address that failed within the window is remembered
    assert throttle.blocked("192.0.2.1", now=1100.0 + 900)
    assert not throttle.blocked("192.0.2.1", now=1500.0 + 900)
    assert len(throttle) == 0


# -- sessions kept in the database -----------------------------------------------------------------


@pytest.fixture
async def console(make_config: Callable[..., Config], clock: FakeClock) -> AsyncIterator[SandboxClient]:
    async with sandbox_app(console_config(make_config), clock=clock) as bot:
        yield bot


async def test_a_cookie_kept_after_signing_out_is_refused(console: SandboxClient) -> None:
    csrf = await sign_in(console)
    cookie = session_cookie(console)
    resp = await console.http.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/console/login"
    assert await status_with(console, cookie) == 302  # copied or kept, the cookie no longer signs in
    resp = await console.http.post("/console/refresh", data={"csrf": csrf},
                                   headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert resp.status == 401


async def test_a_session_ends_after_session_hours_and_ended_sessions_are_deleted(
    console: SandboxClient, clock: FakeClock,
) -> None:
    async def rows() -> int:
        async with console.db.read() as s:
            return (await s.execute(select(func.count()).select_from(ConsoleSession))).scalar_one()

    csrf = await sign_in(console)
    await console.http.post("/console/logout", data={"csrf": csrf})
    await sign_in(console)
    cookie = session_cookie(console)
    assert await console.app[JOBS].run("console_sessions_cleanup") == 1  # the signed-out one
    assert await rows() == 1 and await status_with(console, cookie) == 200
    clock.advance(hours=12, seconds=1)  # [console] session_hours
    assert await status_with(console, cookie) == 302
    assert await console.app[JOBS].run("console_sessions_cleanup") == 1 and await rows() == 0


async def test_removing_a_user_or_changing_their_role_ends_their_sessions_in_every_process(
    console: SandboxClient, make_config: Callable[..., Config], clock: FakeClock,
) -> None:
    await sign_in(console)
    ops_cookie = session_cookie(console)
    await sign_in(console, "look", "viewer-password-1")
    look_cookie = session_cookie(console)
    # A second process on the same database, its config changed: ops removed, look an operator.
    changed = [u for u in USERS if u["name"] == "boss"] + [{**USERS[1], "role": "operator"}]
    async with sandbox_app(console_config(make_config, changed), clock=clock) as other:
        assert await status_with(other, ops_cookie) == 302
        assert await status_with(other, look_cookie) == 302
    # The first process, still on the old config, refuses them too: the sessions were revoked.
    assert await status_with(console, ops_cookie) == 302
    assert await status_with(console, look_cookie) == 302
    await sign_in(console)  # a user still in the config signs in again as before
