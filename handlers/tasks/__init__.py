"""Task check-ins (打卡): tasks from ``[[tasks]]`` and operators' ``/task add``, checked in to
in a group or one-to-one for points, with caps, proof, approval and pending days."""
from __future__ import annotations

from collections.abc import AsyncIterator

from bot.dispatcher import Dispatcher
from bot.feature import Feature
from handlers.tasks.config import TASKS
from handlers.tasks.routes import router
from storage import task_definitions


async def lifespan(dispatcher: Dispatcher) -> AsyncIterator[None]:
    """The config's tasks follow the config at every start (operators' own tasks stay)."""
    async with dispatcher.db.transaction() as session:
        await task_definitions.ensure(session, [t.model_dump() for t in dispatcher.config[TASKS]])
    yield


feature = Feature("tasks", settings=(TASKS,), texts=Feature.texts_beside(__file__), routers=lambda config: [router],
                  lifespan=lifespan)
