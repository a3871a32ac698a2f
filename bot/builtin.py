"""What siyu ships: its channels and its features, in routing order, and the config they make.

This is the one place that lists features (DESIGN §10). A brand's own feature joins the same
way, from its own module, without an edit here:

    from bot.builtin import FEATURES, load_config
    config = load_config("config.toml", features=[*FEATURES, lottery.feature])
    app = create_app(config)            # the app takes its features from the config

or from the command line with ``bot.cli.main(features=[*FEATURES, lottery.feature])``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from bot import api, console, member_center
from bot.channels import bridge, robot, sandbox, wecom
from bot.channels.base import ChannelKind
from bot.config import Config, config_schema
from bot.config import config_from_dict as _from_dict
from bot.config import load_config as _load
from bot.feature import Feature
from handlers import (
    broadcasts,
    handover,
    help,
    koc,
    leaderboard,
    levels,
    lifecycle,
    onboarding,
    operators,
    points,
    reports,
    rewards,
    signin,
    tasks,
    votes,
)

CHANNELS: tuple[ChannelKind, ...] = (sandbox.kind, wecom.kind, bridge.kind, robot.kind)
# Routing order: the first feature whose route takes a message handles it; the one-to-one
# fallback (help's) comes after every route whatever the order.
FEATURES: tuple[Feature, ...] = (
    help.feature, onboarding.feature, signin.feature, points.feature, levels.feature, leaderboard.feature,
    rewards.feature, votes.feature, tasks.feature, koc.feature, lifecycle.feature, broadcasts.feature,
    handover.feature, operators.feature, reports.feature, member_center.feature, api.feature, console.feature,
)


@lru_cache(maxsize=16)
def schema(channels: tuple[ChannelKind, ...] = CHANNELS, features: tuple[Feature, ...] = FEATURES) -> type[Config]:
    """The config type of a siyu with these channels and features (built once for each set)."""
    return config_schema(channels, features)


SiyuConfig = schema()


def config_from_dict(data: Mapping[str, Any], *, features: Iterable[Feature] = FEATURES,
                     channels: Iterable[ChannelKind] = CHANNELS, env: Mapping[str, str] | None = None,
                     source: str = "config") -> Config:
    """A config from TOML-shaped ``data``; ``ConfigError`` names each key that is wrong."""
    return _from_dict(data, schema=schema(tuple(channels), tuple(features)), env=env, source=source)


def load_config(path: str | os.PathLike[str] | None = None, *, features: Iterable[Feature] = FEATURES,
                channels: Iterable[ChannelKind] = CHANNELS, env: Mapping[str, str] | None = None) -> Config:
    """``path``, else ``$SIYU_CONFIG``, else ``./config.toml``, else the built-in defaults."""
    return _load(path, schema=schema(tuple(channels), tuple(features)), env=env)


def default_texts() -> dict[str, str]:
    """Every user-facing text siyu ships, by key (what ``[texts]`` may override)."""
    return dict(SiyuConfig.text_defaults)
