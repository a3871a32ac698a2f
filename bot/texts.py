"""User-facing texts: templates from config (zh-CN by default), rendered by key."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class _Keep(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Texts:
    def __init__(self, templates: Mapping[str, str]) -> None:
        self._templates = dict(templates)

    def __call__(self, key: str, /, **values: Any) -> str:
        """Render ``key``; a placeholder left without a value stays visible rather than crash."""
        return self._templates[key].format_map(_Keep(values))
