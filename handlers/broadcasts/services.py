"""Broadcasts for other features and surfaces: reading an operator's target, planning a
broadcast's deliveries, the hook through which a feature fills its own placeholders, and where
broadcasts stand (the console's list)."""
from __future__ import annotations

from typing import Any

import handlers.broadcasts.cards as cards
from bot.config import Config
from bot.texts import Texts
from handlers.broadcasts.config import link_problems, member_center
from handlers.broadcasts.planner import TEMPLATE_VALUES, Placeholders, Planned, plan
from handlers.broadcasts.status import Summary, state_of, summaries

__all__ = ["TEMPLATE_VALUES", "Placeholders", "Planned", "Summary", "api_card", "parse_target", "plan",
           "state_of", "summaries", "text_problem"]


def api_card(config: Config, texts: Texts, card: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """A card from the REST API (``{"type": "link"|"miniprogram", ...}``): its title and
    description cut to WeCom's limits (the schema counts characters, WeCom bytes), and what is
    still wrong with it in the operator's words (None if it can be sent)."""
    card = cards.cut(card)
    found = cards.problems(card, member_center_url=member_center(config))
    found += link_problems(config, cards.used_placeholders(card))
    return card, (cards.explain(texts, found) if found else None)


def text_problem(config: Config, texts: Texts, text: str) -> str | None:
    """What is wrong with a broadcast's text in the operator's words (a member-center page that
    does not exist), None if nothing."""
    found = link_problems(config, text)
    return cards.explain(texts, found) if found else None


def parse_target(word: str) -> dict[str, object] | None:
    """``all``, ``tag:<标签>[,<标签>]`` or group ids separated by commas; None if it is none of them."""
    if word == "all":
        return {"all": True}
    if word.startswith("tag:"):
        tags = [t for t in word[4:].split(",") if t]
        return {"tags": tags} if tags and all(len(t) <= 64 for t in tags) else None
    ids = [g for g in word.split(",") if g]
    return {"groups": ids} if ids and all(len(g) <= 128 for g in ids) else None
