"""``[wecom]``: the WeCom self-built app (its keys, 微信客服) and ``[wecom.group_quota]``, the
rule WeCom holds customer groups to (wecom.md §3.5)."""
from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bot.config import Section, Setting
from bot.periods import HHMM


class GroupQuotaConfig(Section):
    """WeCom customer groups receive few mass messages (wecom.md §3.5): the rule siyu keeps."""

    # daily: 1 a day | weekly: 7 a week (from Monday) | monthly: as many as the month has days.
    rule: Literal["daily", "weekly", "monthly"] = "daily"
    # The day's items for a group go out together as one digest task at this local time.
    digest_at: str = "09:00"
    # A task the owner has not confirmed after this many hours is expired.
    expire_after_h: int = Field(72, ge=1, le=24 * 30)
    # Remind the owner after this many hours without confirmation, at most 3 times a day.
    remind_after_h: int = Field(2, ge=1, le=72)

    @field_validator("digest_at")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError('digest_at is a local time "HH:MM"')
        return value


class WecomConfig(Section):
    enabled: bool = False
    corp_id: str = ""
    agent_id: int | None = None
    secret: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    api_base_url: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    # Where a browser goes for WeCom's web authorization (网页授权): {this}connect/oauth2/authorize
    # (developer.work.weixin.qq.com/document/path/91022). Changed only for a test server.
    oauth_base_url: str = Field("https://open.weixin.qq.com/", max_length=256)
    replay_window_s: int = Field(300, ge=0)
    # Callbacks are stored and answered first, then handled by this many workers. None: sized
    # for the database's connection pool (``bot.channels.wecom.inbound.default_workers``).
    handling_workers: int | None = Field(None, ge=1, le=512)
    # 微信客服: pull WeChat users' one-to-one messages on kf_msg_or_event and reply with
    # kf/send_msg (channel wecom_kf). The app must be allowed to manage the 客服 accounts.
    kf: bool = False
    # The first pull of a 客服 account returns up to 3 days of history: answer it (true), or
    # only take the cursor and answer what comes after (false).
    kf_replay_history: bool = False
    # Send a question's numbered options (KOC screening, votes ...) as a 微信客服 menu to tap.
    kf_menus: bool = True
    # Day one and every day after: read the staff's customers and the customer groups from WeCom
    # (siyu wecom sync) every this many hours; 0: only when an operator runs it.
    sync_every_h: int = Field(24, ge=0, le=24 * 30)
    # The sync's pace in WeCom API calls a second, at most 8 at a time. WeCom allows each API
    # 10,000 calls a minute per company, shared with everything else the company runs.
    sync_calls_per_s: float = Field(30.0, gt=0, le=150)
    # Customer groups: the receive quota, the daily digest and owners' tasks.
    group_quota: GroupQuotaConfig = GroupQuotaConfig()

    @field_validator("oauth_base_url")
    @classmethod
    def _oauth_base(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is not an address such as https://open.weixin.qq.com/")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _secrets_when_enabled(self) -> WecomConfig:
        if self.enabled:
            missing = [k for k in ("corp_id", "secret", "token", "encoding_aes_key") if not getattr(self, k)]
            if self.agent_id is None:
                missing.append("agent_id")
            if missing:
                raise ValueError(
                    "required when [wecom] enabled = true: "
                    + ", ".join(f"{k} (or SIYU_WECOM_{k.upper()})" for k in missing)
                )
            if not re.fullmatch(r"[A-Za-z0-9]{43}", self.encoding_aes_key):
                raise ValueError("encoding_aes_key must be the 43 letters and digits WeCom shows")
        return self


WECOM = Setting("wecom", WecomConfig)
