"""Onboarding: welcomes in the group and one-to-one, tags by channel code (渠道活码), and the
profile questions a new member answers (``[onboarding]``, ``[channel_codes]``)."""
from __future__ import annotations

from bot.config import Config
from bot.feature import Feature
from bot.middlewares import Middleware
from flows.engine import Flow
from handlers.onboarding import flow
from handlers.onboarding.config import CHANNEL_CODES, ONBOARDING
from handlers.onboarding.routes import on_first_message, router


def middlewares(config: Config) -> list[Middleware]:
    settings = config[ONBOARDING]
    return [on_first_message] if settings.enabled and "first_message" in settings.start_on else []


def flows(config: Config) -> list[Flow]:
    return [flow.build(config)] if config[ONBOARDING].enabled else []


feature = Feature("onboarding", settings=(ONBOARDING, CHANNEL_CODES), texts=Feature.texts_beside(__file__),
                  routers=lambda config: [router], middlewares=middlewares, flows=flows,
                  link_texts=("welcome_group", "welcome_contact"))
