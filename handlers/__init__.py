"""What the bot does with a command, keyword or event. Pure application logic: no HTTP here.

``default_routers()`` is the bot siyu ships; a brand's own bot can include these and its own.
"""
from __future__ import annotations

from bot.config import Config
from bot.jobs import Job
from bot.middlewares import Middleware
from bot.router import Router


def default_routers(config: Config | None = None) -> list[Router]:
    """The built-in routers in routing order (fallback last)."""
    from handlers import (broadcast, catalog_admin, checkin, fallback, help, koc, koc_review, leaderboard, lifecycle,
                          operators, points, redemption, tasks, votes, welcome)

    config = config or Config()
    routers = [help.router, welcome.router]
    if config.checkin.enabled:
        routers.append(checkin.router(config))
    routers += [points.router, leaderboard.router, redemption.router, votes.router, lifecycle.router, broadcast.router,
                operators.router, koc_review.router, catalog_admin.router]
    routers.append(tasks.router(config))
    if config.koc.enabled:
        routers.append(koc.router(config))
    return [*routers, fallback.router]


def default_middlewares(config: Config | None = None) -> list[Middleware]:
    """The built-in inner middlewares, in order."""
    from handlers import koc, onboarding

    config = config or Config()
    middlewares: list[Middleware] = []
    if config.onboarding.enabled and "first_message" in config.onboarding.start_on:
        middlewares.append(onboarding.on_first_message)
    if config.koc.enabled and config.koc.activity_threshold:
        middlewares.append(koc.invite_the_active)
    return middlewares


def default_jobs(config: Config | None = None) -> list[Job]:
    """The built-in periodic jobs (run by the sweeper)."""
    from handlers import broadcast, fanout, leaderboard, lifecycle, metrics_rollup, reports, votes

    config = config or Config()
    return [*leaderboard.jobs(config), *votes.jobs(config), *lifecycle.jobs(config), *fanout.jobs(config),
            *broadcast.jobs(config), *reports.jobs(config), *metrics_rollup.jobs(config)]
