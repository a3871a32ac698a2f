"""Answer checking shared by question flows: choices by name or number, whole numbers in range."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def choice(text: str, choices: Sequence[str]) -> str | None:
    """The choice ``text`` names, by its words or its 1-based number; None if it names none."""
    text = text.strip()
    if text in choices:
        return text
    if text.isdigit() and 1 <= int(text) <= len(choices):
        return choices[int(text) - 1]
    return None


def number(text: str, low: int | None = None, high: int | None = None) -> int | None:
    text = text.strip().translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if not text.isdigit() or len(text) > 9:
        return None
    value = int(text)
    if (low is not None and value < low) or (high is not None and value > high):
        return None
    return value


def choices_line(choices: Sequence[str]) -> str:
    return "  ".join(f"{i} {c}" for i, c in enumerate(choices, 1))


def answer(event: Any) -> str:
    return str(event.kwargs.get("text", "")).strip()


def valid(parse: Callable[[str], Any]) -> Callable[[Any], bool]:
    """A transition condition: ``parse`` accepts the member's answer."""
    return lambda event: parse(answer(event)) is not None


def store(key: str, parse: Callable[[str], Any]) -> Callable[[Any], None]:
    """A ``before`` callback keeping the parsed answer under ``key``."""

    def keep(event: Any) -> None:
        event.model.data[key] = parse(answer(event))

    return keep
