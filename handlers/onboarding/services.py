"""Onboarding for other features and surfaces: what its profile questions are called, so a
member's answers are shown to operators under a Chinese name rather than their key."""
from __future__ import annotations

from bot.config import Config
from bot.texts import Texts
from handlers.onboarding.config import ONBOARDING

__all__ = ["question_labels"]


def question_labels(config: Config, texts: Texts) -> dict[str, str]:
    """Each question's key → its name: its ``label``, else the text ``profile_<key>`` (the
    default questions'), else the question itself."""
    return {q.key: q.label or (texts(f"profile_{q.key}") if f"profile_{q.key}" in texts else q.text.rstrip("？?"))
            for q in config[ONBOARDING].questions}
