"""The bridge channel: group and one-to-one messages through a gateway of hosted WeChat
clients, signed both ways (docs/bridge.md: ban risk)."""
from __future__ import annotations

from bot.channels.base import Channel, ChannelKind
from bot.channels.bridge.channel import NAME, BridgeChannel
from bot.channels.bridge.config import BRIDGE
from bot.clock import Clock
from bot.config import Config


def build(config: Config, clock: Clock) -> list[Channel]:
    return [BridgeChannel(config[BRIDGE], clock)] if config[BRIDGE].enabled else []


kind = ChannelKind(NAME, settings=(BRIDGE,), capabilities={NAME: BridgeChannel.capabilities}, build=build,
                   enabled=lambda config: config[BRIDGE].enabled)
