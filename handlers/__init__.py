"""What the bot does with a command, keyword or event. Pure application logic: no HTTP here.

``default_routers()`` is the bot siyu ships; a brand's own bot can include these and its own.
"""
from __future__ import annotations

from bot.router import Router


def default_routers() -> list[Router]:
    """The built-in routers in routing order (fallback last)."""
    from handlers import fallback, help, welcome

    return [help.router, welcome.router, fallback.router]
