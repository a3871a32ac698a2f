"""``[member_center]``: the members' own pages (会员中心) under /m/, opened from link cards in
groups: on official WeCom the only way a member in a customer group signs in, earns, redeems
and votes (the app hears nothing customers write there, ../shared/wecom.md §1)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from bot.config import Section, Setting

QR_TYPES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


class MemberCenterConfig(Section):
    enabled: bool = True
    # Signs the session cookie: at least 32 characters. Empty: a random key per process, so
    # members sign in again after a restart; several processes behind one address need one key.
    secret: str = Field("", max_length=256)
    # How long a member stays signed in on their phone.
    session_days: int = Field(30, ge=1, le=365)
    # Actions (签到, 兑换, 投票 ...) one member may take a minute, and pages one address may open
    # a minute: a script holding a session, or a crowd behind one address, stops there.
    actions_per_min: int = Field(30, ge=1, le=10_000)
    pages_per_min_per_address: int = Field(600, ge=10, le=1_000_000)
    # Where photos members upload as task proof are kept (relative to the working directory),
    # and how large one may be.
    upload_dir: str = Field("uploads", min_length=1, max_length=512)
    upload_max_bytes: int = Field(5 * 1024 * 1024, ge=10_000, le=50 * 1024 * 1024)
    # The QR picture of a channel code (渠道活码) shown to a WeChat user who opens the member
    # center but is not yet the brand's customer: an https URL, or a picture file siyu serves.
    add_contact_qr_url: str = Field("", max_length=512)

    @field_validator("add_contact_qr_url")
    @classmethod
    def _qr(cls, value: str) -> str:
        if not value:
            return value
        if value.startswith(("https://", "http://")):
            parts = urlsplit(value)
            if parts.scheme != "https" or not parts.hostname:
                raise ValueError(f"{value!r}: a picture members' phones load needs an https address")
            return value
        path = Path(value)
        if path.suffix.lower() not in QR_TYPES:
            raise ValueError(f"{value!r}: a picture file ({', '.join(QR_TYPES)}) or an https address")
        if not path.is_file():
            raise ValueError(f"{value!r}: no such file (relative to the working directory)")
        return value

    @model_validator(mode="after")
    def _valid(self) -> MemberCenterConfig:
        if self.secret and len(self.secret) < 32:
            raise ValueError("secret must be at least 32 characters (or empty for a random one per process)")
        return self


MEMBER_CENTER = Setting("member_center", MemberCenterConfig)
