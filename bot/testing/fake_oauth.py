"""WeCom's web authorization (网页授权) in the fake WeCom: the authorize page a browser is sent
to, and ``auth/getuserinfo`` with WeCom's answers and error codes.

    url = wecom.authorize(location, external_userid="wm-abc")   # the member taps through WeCom
    await client.get(url)                                        # back to siyu with code and state

A code names one person, is used once and is valid 5 minutes; after that, or for a code WeCom
never issued, ``auth/getuserinfo`` answers 40029 "invalid code" (developer.work.weixin.qq.com/
document/path/91023, 96442; the answer's fields there).
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from aiohttp import web

CODE_TTL_S = 300  # "code只能使用一次，5分钟未被使用自动过期" (document/path/91023)


class OAuthFake:
    """Mixed into ``FakeWeCom``: ``authorize`` plays WeCom's page, ``oauth_code`` issues a code."""

    corp_id: str
    now: Callable[[], float]
    requests: list[Any]

    def _init_oauth(self) -> None:
        self._codes: dict[str, tuple[float, dict[str, str]]] = {}  # code -> (issued at, answer)
        self._code_numbers = itertools.count(1)
        self.oauth_agent_id: int | None = None  # set: authorize checks the link's agentid

    def oauth_code(self, *, userid: str | None = None, external_userid: str | None = None,
                   openid: str | None = None, legacy: bool = False) -> str:
        """A fresh code for a company member (``userid``), a customer (``external_userid``, with
        an ``openid``) or a WeChat user who is neither (``openid`` only). ``legacy``: the answer
        spells the fields as the older API did (``UserId``, ``OpenId``, ``DeviceId``)."""
        answer: dict[str, str] = {}
        if userid is not None:
            answer = {"UserId": userid, "DeviceId": "dev-1"} if legacy else {"userid": userid}
        else:
            opened = openid or f"o-{external_userid or 'wechat'}"
            answer = {"OpenId": opened, "DeviceId": "dev-1"} if legacy else {"openid": opened}
            if external_userid is not None:
                answer["external_userid"] = external_userid
        code = f"CODE{next(self._code_numbers):06d}"
        self._codes[code] = (self.now(), answer)
        return code

    def authorize(self, location: str, **identity: Any) -> str:
        """Where WeCom sends the browser back after ``location`` (siyu's redirect to the authorize
        page): ``redirect_uri?code=...&state=...``, with a code for ``identity`` (``oauth_code``'s
        keywords). The link is checked as WeCom reads it (document/path/91022)."""
        parts = urlsplit(location)
        assert parts.path.endswith("/connect/oauth2/authorize"), location
        assert parts.fragment == "wechat_redirect", "WeCom's client needs #wechat_redirect"
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert query.get("appid") == self.corp_id, query
        assert query.get("response_type") == "code" and query.get("scope") == "snsapi_base", query
        state = query.get("state", "")
        assert state.isalnum() and state.isascii() and len(state) <= 128, "state: a-zA-Z0-9, at most 128 bytes"
        if self.oauth_agent_id is not None:
            assert query.get("agentid") == str(self.oauth_agent_id), query
        redirect = query["redirect_uri"]
        joiner = "&" if "?" in redirect else "?"
        return redirect + joiner + urlencode({"code": self.oauth_code(**identity), "state": state})

    def _auth_getuserinfo(self, body: dict[str, Any]) -> web.Response:
        code = self.requests[-1].query.get("code", "")  # a GET: the code is in the query
        issued = self._codes.pop(code, None)  # used once, whatever the answer
        if issued is None or self.now() - issued[0] > CODE_TTL_S:
            return web.json_response({"errcode": 40029, "errmsg": "invalid code"})
        return web.json_response({"errcode": 0, "errmsg": "ok", **issued[1]})
