"""``[sandbox]``: the local channel for development, demos and tests."""
from __future__ import annotations

from pydantic import Field

from bot.config import Section, Setting


class SandboxConfig(Section):
    enabled: bool = True
    # Anyone who reaches the sandbox can speak as anyone, operators included: it answers only
    # clients on this machine (and nothing forwarded by a proxy) unless this is true.
    allow_remote: bool = False
    # At most this many sends a second (None: no limit), so a demo or a test can watch a
    # fan-out progress.
    send_rate_per_s: float | None = Field(None, gt=0, le=100_000)
    # Each send takes this long, like a real network call (benchmarks). Default 0.
    send_latency_ms: int = Field(0, ge=0, le=10_000)


SANDBOX = Setting("sandbox", SandboxConfig)
