"""siyu's application layer: config, app, channels, dispatcher, outbox, scheduler, CLI."""
