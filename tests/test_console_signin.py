"""Who may stay signed in to the console: the sign-in throttle behind a reverse proxy (counted by
the client's address, which a client cannot forge) and its memory, and sessions kept in the
database, so signing out, expiry or a change of users in the config ends them in every process."""
from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from bot.config.schema import ServerConfig
from bot.http import client_address
from tests.test_config import keys_of, problems_of

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
