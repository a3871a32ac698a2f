"""Per-member conversations as ``transitions`` state machines (DESIGN §5).

The dispatcher offers every one-to-one message to the member's active flow before keyword
handlers; ``flows.engine`` declares flows, ``flows.runner`` runs them. A new flow is one module
here that builds a ``Flow`` and is listed in ``default_flows``. See docs/flows.md.
"""
from __future__ import annotations

from bot.config import Config
from flows.engine import Flow


def default_flows(config: Config | None = None) -> list[Flow]:
    """The flows siyu ships, built from the config: redemption, broadcast confirmation,
    onboarding and KOC screening."""
    from flows import broadcast_confirm, koc_screening, onboarding, redemption

    config = config or Config()
    flows: list[Flow] = [redemption.build(config), broadcast_confirm.build(config)]
    if config.onboarding.enabled:
        flows.append(onboarding.build(config))
    if config.koc.enabled:
        flows.append(koc_screening.build(config))
    return flows
