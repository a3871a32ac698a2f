"""The WeCom (企业微信) channels: the self-built app (``wecom``: callbacks, the API, customer
groups through owner tasks) and, with ``[wecom] kf``, 微信客服 (``wecom_kf``)."""
from __future__ import annotations

from bot.channels.base import Channel, ChannelKind
from bot.channels.wecom.channel import WeComChannel
from bot.channels.wecom.config import WECOM
from bot.channels.wecom.kf import KfChannel
from bot.clock import Clock
from bot.config import Config


def build(config: Config, clock: Clock) -> list[Channel]:
    settings = config[WECOM]
    if not settings.enabled:
        return []
    wecom = WeComChannel(settings, clock)
    if not settings.kf:
        return [wecom]
    wecom.kf_channel = KfChannel(wecom, clock)
    return [wecom, wecom.kf_channel]


kind = ChannelKind("wecom", settings=(WECOM,), build=build, enabled=lambda config: config[WECOM].enabled,
                   capabilities={WeComChannel.name: WeComChannel.capabilities, KfChannel.name: KfChannel.capabilities})
