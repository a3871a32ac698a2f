"""Channels: how siyu hears and reaches members. Each is a sub-package with its config section
and a ``ChannelKind`` that the composition root lists (``bot.builtin``); each channel declares
what it can do (DESIGN §3), and features ask ``config.capabilities(name)`` rather than a name."""
from bot.channels.base import Capability, Channel, ChannelKind, DeliveryError, HandedToOwner

__all__ = ["Capability", "Channel", "ChannelKind", "DeliveryError", "HandedToOwner"]
