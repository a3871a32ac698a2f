"""Operators' commands about people: roles (``/role``), members (``/member``), tags (``/tag``),
conversations (``/flow``) and the audit trail (``/audit``)."""
from __future__ import annotations

from bot.feature import Feature
from handlers.operators.routes import router

feature = Feature("operators", texts=Feature.texts_beside(__file__), routers=lambda config: [router])
