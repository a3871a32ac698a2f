"""``Feature``: one thing siyu does, packaged as one folder and registered with one line.

A feature (sign-in, rewards, KOC screening ...; DESIGN §10) brings its config section, its
texts, its routers and middlewares, its flows, its periodic jobs and what must run while the
app runs; the composition root (``bot.builtin``) lists the features, and a brand's own feature
in its own module is registered the same way:

    feature = Feature(
        "lottery",
        settings=(LOTTERY,),                               # [lottery] in config.toml
        texts=Path(__file__).with_name("texts.toml"),      # its default texts (zh-CN)
        routers=lambda config: [router],
        jobs=lambda config: [Job("lottery_draw", draw, every_s=60)],
    )

Features do not import each other, except a service module another feature names for that
(``handlers.points.services``); a ``Hook`` lets one feature take contributions from others
without knowing them (the broadcast planner's template placeholders).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from aiohttp import web

    from bot.config import Config, Setting
    from bot.dispatcher import Dispatcher
    from bot.jobs import Job
    from bot.middlewares import Middleware
    from bot.router import Router
    from flows.engine import Flow

T = TypeVar("T")
Lifespan = Callable[["Dispatcher"], AsyncIterator[None]]


class Hook(Generic[T]):
    """A point where a feature takes contributions from features it does not know: it names the
    hook in its services, others plug into it (``Feature.hooks``), it reads them with
    ``config.hooked(HOOK)``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Hook({self.name!r})"


def _nothing(config: Config) -> list[Any]:
    return []


@dataclass(frozen=True, eq=False)
class Feature:
    """What a feature brings. Each ``Callable[[Config], ...]`` is called once at start with the
    whole config, so a feature that is switched off brings nothing."""

    name: str
    settings: tuple[Setting[Any], ...] = ()
    texts: Path | None = None
    routers: Callable[[Config], Iterable[Router]] = _nothing
    middlewares: Callable[[Config], Iterable[Middleware]] = _nothing
    flows: Callable[[Config], Iterable[Flow]] = _nothing
    jobs: Callable[[Config], Iterable[Job]] = _nothing
    # Runs around the app's life, once the database and dispatcher exist (seed the catalog,
    # start a scheduler): the code before its ``yield`` at start, after it at stop.
    lifespan: Lifespan | None = None
    # HTTP routes of a web surface (the REST API, the console); features in ``handlers`` have none.
    web: Callable[[web.Application], None] | None = None
    # Rules across sections, raising ValueError with the problem (checked with the config).
    checks: tuple[Callable[[Config], None], ...] = ()
    # Config keys that moved, still read with a warning: {"checkin.timezone": "community.timezone"}.
    moved: Mapping[str, str] = field(default_factory=dict)
    hooks: Mapping[Hook[Any], Any] = field(default_factory=dict)
    # Its texts in which an operator's override may use link placeholders ({member_center:mall},
    # ``bot.links``): the feature fills them where it sends the text.
    link_texts: tuple[str, ...] = ()

    @staticmethod
    def texts_beside(module_file: str) -> Path:
        """The ``texts.toml`` in the folder of ``module_file`` (pass ``__file__``)."""
        return Path(module_file).resolve().with_name("texts.toml")
