"""The robot channel: a WeCom group robot posting into the operators' internal group only."""
from __future__ import annotations

from bot.channels.base import Channel, ChannelKind
from bot.channels.robot.channel import NAME, RobotChannel
from bot.channels.robot.config import ROBOT
from bot.clock import Clock
from bot.config import Config


def build(config: Config, clock: Clock) -> list[Channel]:
    return [RobotChannel(config[ROBOT])] if config[ROBOT].enabled else []


kind = ChannelKind(NAME, settings=(ROBOT,), capabilities={NAME: RobotChannel.capabilities}, build=build,
                   enabled=lambda config: config[ROBOT].enabled)
