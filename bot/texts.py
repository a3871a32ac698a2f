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

    def template(self, key: str) -> str:
        """The text ``key`` before rendering (what placeholders it uses)."""
        return self._templates[key]

    def __contains__(self, key: object) -> bool:
        return key in self._templates

    def label(self, prefix: str, value: object) -> str:
        """The Chinese label of a stored state, kind or key (the text ``{prefix}_{value}``), for
        what is stored in English but shown to a person; the value itself where no text names it
        (an operator's own word: a tag, a reward, a custom question's key)."""
        key = f"{prefix}_{value}"
        return self._templates[key] if key in self._templates else str(value)
