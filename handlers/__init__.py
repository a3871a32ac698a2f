"""What the bot does: one package per feature (DESIGN §10), each with its config section, texts,
routers, jobs, flows and the services other features and surfaces call, and one ``feature``
object that ``bot.builtin`` lists. See docs/architecture.md for how to add one."""
