"""Answer checking shared by question flows: choices by name or number, whole numbers in range."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.numbers import FULL_WIDTH_DIGITS, parse_int


def choice(text: str, choices: Sequence[str]) -> str | None:
    """The choice ``text`` names, by its words or its 1-based number; None if it names none."""
    text = text.strip()
    if text in choices:
        return text
    picked = parse_int(text.translate(FULL_WIDTH_DIGITS), 1, len(choices))
    return choices[picked - 1] if picked is not None else None


def number(text: str, low: int | None = None, high: int | None = None) -> int | None:
    """A whole number in ``low``..``high`` (at most 9 digits), full-width digits accepted."""
    return parse_int(text.strip().translate(FULL_WIDTH_DIGITS), 0 if low is None else low,
                     999_999_999 if high is None else high)


# How people write a count in Chinese chat: 5千, 1.2万, 3w, 2k.
UNITS = {"千": 1_000, "k": 1_000, "K": 1_000, "万": 10_000, "w": 10_000, "W": 10_000}


def count(text: str, low: int = 0, high: int = 999_999_999) -> int | None:
    """A count as people write it (5000, 5千, 1.2万, 3w), in ``low``..``high``; None otherwise."""
    text = text.strip().translate(FULL_WIDTH_DIGITS).replace(",", "")
    unit = UNITS.get(text[-1:], 1) if text else 1
    if unit == 1:
        return number(text, low, high)
    whole, dot, tenths = text[:-1].partition(".")
    if parse_int(whole, 0, high) is None or (dot and (len(tenths) != 1 or parse_int(tenths, 0, 9) is None)):
        return None
    value = int(whole) * unit + (int(tenths) * unit // 10 if dot else 0)
    return value if low <= value <= high else None


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
