"""Votes on the next rewards (投票): operators open a poll, members vote in chat, at its end the
results go to the groups and the winners enter the catalog."""
from __future__ import annotations

from bot.feature import Feature
from bot.jobs import Job
from handlers.votes.routes import close_due, router

feature = Feature("votes", texts=Feature.texts_beside(__file__), routers=lambda config: [router],
                  jobs=lambda config: [Job("polls", close_due, every_s=30.0)])
