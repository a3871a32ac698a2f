"""Per-member conversations as ``transitions`` state machines (DESIGN §5).

The dispatcher offers every one-to-one message to the member's active flow before keyword
handlers; ``flows.engine`` declares flows, ``flows.runner`` runs them. A new flow is one module
here that builds a ``Flow`` and is listed in ``default_flows``. See docs/flows.md.
"""
from __future__ import annotations

from flows.engine import Flow


def default_flows() -> list[Flow]:
    """The flows siyu ships. (Onboarding and KOC screening come with issue 4's next step.)"""
    return []
