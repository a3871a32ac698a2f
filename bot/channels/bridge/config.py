"""``[bridge]``: a gateway relaying hosted WeChat clients (docs/bridge.md)."""
from __future__ import annotations

from pydantic import Field, model_validator

from bot.config import Section, Setting


class BridgeConfig(Section):
    """A gateway relaying hosted WeChat clients (docs/bridge.md). Hosted clients risk bans:
    keep the send rate low."""

    enabled: bool = False
    # The shared HMAC secret, 32+ characters. A secret: prefer SIYU_BRIDGE_SECRET.
    secret: str = ""
    # Where siyu POSTs outbound messages.
    gateway_url: str = ""
    # The hosted account siyu speaks as (sent with every outbound message).
    account: str = Field("default", min_length=1, max_length=128)
    # Inbound events whose timestamp is further than this from siyu's clock are refused.
    replay_window_s: int = Field(300, ge=10, le=3600)
    # Sends per second through the gateway, for all its groups (per-group: [outbox]).
    send_rate_per_s: float = Field(1.0, gt=0, le=50)

    @model_validator(mode="after")
    def _needed(self) -> BridgeConfig:
        if self.enabled:
            if len(self.secret) < 32:
                raise ValueError("required when [bridge] enabled = true: "
                                 "secret of 32+ characters (or SIYU_BRIDGE_SECRET)")
            if not self.gateway_url.startswith(("http://", "https://")):
                raise ValueError("required when [bridge] enabled = true: gateway_url (http:// or https://)")
        return self


BRIDGE = Setting("bridge", BridgeConfig)
