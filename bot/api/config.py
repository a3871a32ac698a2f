"""``[api]``: the REST API under /api/ and its bearer tokens."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bot.config import Section, Setting


class ApiToken(Section):
    # A bearer token for the REST API: at least 24 characters (a secret: keep it out of git).
    token: str = Field(min_length=24, max_length=256)
    role: Literal["viewer", "operator", "admin"] = "viewer"
    # Who uses it, as the audit trail names them (api:<name>).
    name: str = Field("api", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class ApiConfig(Section):
    """The REST API under /api/ (for the brand's CRM and other systems)."""

    enabled: bool = True
    tokens: list[ApiToken] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> ApiConfig:
        if len({t.token for t in self.tokens}) != len(self.tokens):
            raise ValueError("api tokens must be distinct")
        return self


API = Setting("api", ApiConfig)
