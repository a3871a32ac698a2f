"""What operators read about a member, for the chat command and the console alike: the profile
(member attributes) under Chinese names with Chinese values."""
from __future__ import annotations

from typing import Any

from bot.config import Config
from bot.texts import Texts
from handlers.onboarding.services import question_labels

__all__ = ["profile"]


def _value(texts: Texts, value: Any) -> str:
    if isinstance(value, bool):
        return texts("profile_yes" if value else "profile_no")
    if isinstance(value, list | tuple):
        return "、".join(str(v) for v in value) or "—"
    return "—" if value is None or value == "" else str(value)


def profile(config: Config, texts: Texts, attributes: dict[str, Any] | None, *,
            leave_out: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(name, value) of each attribute: onboarding's questions by their labels, the others by
    the text ``profile_<key>`` of the feature that keeps them (bought, koc_type, level)."""
    names = question_labels(config, texts)
    return [(names.get(key) or texts.label("profile", key), _value(texts, value))
            for key, value in (attributes or {}).items() if key not in leave_out]
