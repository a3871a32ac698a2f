"""The sandbox channel: every capability, no platform (DESIGN §2: ``/sandbox/...``)."""
from __future__ import annotations

from bot.channels.base import Channel, ChannelKind
from bot.channels.sandbox.channel import CAPABILITIES, NAME, SandboxChannel
from bot.channels.sandbox.config import SANDBOX
from bot.clock import Clock
from bot.config import Config


def build(config: Config, clock: Clock) -> list[Channel]:
    return [SandboxChannel(config[SANDBOX])] if config[SANDBOX].enabled else []


kind = ChannelKind(NAME, settings=(SANDBOX,), capabilities={NAME: CAPABILITIES}, build=build,
                   enabled=lambda config: config[SANDBOX].enabled)
