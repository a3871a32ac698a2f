"""Daily sign-in (签到): once per member per local day, points, streak bonuses."""
from __future__ import annotations

from bot.config import Config
from bot.feature import Feature
from bot.router import Router
from handlers.signin.config import MOVED, SIGNIN
from handlers.signin.routes import router


def routers(config: Config) -> list[Router]:
    return [router(config)] if config[SIGNIN].enabled else []


feature = Feature("signin", settings=(SIGNIN,), texts=Feature.texts_beside(__file__), routers=routers, moved=MOVED)
