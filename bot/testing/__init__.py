"""A test harness shipped with siyu, for siyu's own tests and for a brand's tests of its bot.

    async with sandbox_app(config) as bot:
        replies = await bot.say("u1", "/help")
        assert "/help" in replies[0]["text"]
"""
from bot.testing.clock import FakeClock
from bot.testing.sandbox import SandboxClient, sandbox_app

__all__ = ["FakeClock", "SandboxClient", "sandbox_app"]
