"""Rewards and redemption (兑换): a points catalog tied to real stock; members redeem in chat,
operators approve, fulfil or cancel; never oversold, no point lost or spent twice."""
from __future__ import annotations

from collections.abc import AsyncIterator

from bot.dispatcher import Dispatcher
from bot.feature import Feature
from handlers.rewards import flow
from handlers.rewards.config import REWARDS, levels_exist
from handlers.rewards.routes import router
from storage import rewards


async def lifespan(dispatcher: Dispatcher) -> AsyncIterator[None]:
    """The config's rewards are added once by name; their rules follow the config at every start."""
    async with dispatcher.db.transaction() as session:
        await rewards.ensure(session, [r.spec() for r in dispatcher.config[REWARDS]], now=dispatcher.clock.now())
    yield


feature = Feature("rewards", settings=(REWARDS,), texts=Feature.texts_beside(__file__), routers=lambda config: [router],
                  flows=lambda config: [flow.build(config)], lifespan=lifespan, checks=(levels_exist,))
