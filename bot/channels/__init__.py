"""Channels: how siyu hears and reaches members. Each declares what it can do (DESIGN §3)."""
from bot.channels.base import Capability, Channel, DeliveryError, HandedToOwner

__all__ = ["Capability", "Channel", "DeliveryError", "HandedToOwner"]


def capabilities(name: str) -> frozenset[Capability]:
    """What the channel called ``name`` can do (nothing for a name siyu does not know), without
    starting it: planners decide by this before anything is sent."""
    if name == "sandbox":
        from bot.channels.sandbox import SandboxChannel

        return SandboxChannel.capabilities
    if name == "wecom":
        from bot.channels.wecom.channel import WeComChannel

        return WeComChannel.capabilities
    if name == "wecom_kf":
        from bot.channels.wecom.kf import KfChannel

        return KfChannel.capabilities
    if name == "bridge":
        from bot.channels.bridge import BridgeChannel

        return BridgeChannel.capabilities
    if name == "robot":
        from bot.channels.robot import RobotChannel

        return RobotChannel.capabilities
    return frozenset()
