"""Per-member conversations as ``transitions`` state machines (DESIGN §5).

The dispatcher offers every one-to-one message to the member's active flow before keyword
handlers (``bot.dispatcher.FlowRunner``); the engine and the flows themselves live here.
"""
