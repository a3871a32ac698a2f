"""Channels: how siyu hears and reaches members. Each declares what it can do (DESIGN §3)."""
from bot.channels.base import Capability, Channel, DeliveryError, HandedToOwner

__all__ = ["Capability", "Channel", "DeliveryError", "HandedToOwner"]
