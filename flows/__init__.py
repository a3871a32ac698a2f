"""Per-member conversations as ``transitions`` state machines (DESIGN §5).

The dispatcher offers every one-to-one message to the member's active flow before keyword
handlers. This package is the engine: ``flows.engine`` declares a flow, ``flows.runner`` runs
them, ``flows.questions`` checks answers, ``flows.confirm`` is the confirmation several features
ask with. A flow's definition lives in its feature (``handlers.koc.screening``), beside the
texts, config and handler that start it; the feature brings it with ``Feature.flows``. See
docs/flows.md and docs/architecture.md.
"""
