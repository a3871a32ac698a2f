"""Handovers (在职继承 / 离职继承): an operator hands a staff member's customers and groups to
another, from chat (``/handover``) or the REST API (``POST /api/handovers``), and is told where
it ended; operators are told when owner tasks are withdrawn because a group's owner changed or
left, and re-packed for the new owner.

Where it lives, and why: the request, its checks, its texts and its reports are a feature like
any other (this folder). Calling WeCom is not: features never name a channel (docs/architecture.md),
so the feature writes a pending handover for the channel that declares
``Capability.TRANSFER_CONTACTS``, and that channel (``bot.channels.wecom.handover``) makes the
WeCom calls and polls their results, as it does for owner tasks; both meet in
``storage.handovers``. Owner tasks are withdrawn by the channel too (``bot.channels.wecom.reassign``),
since only it hears owners change; it audits each withdrawal and this feature tells operators."""
from __future__ import annotations

from bot.feature import Feature
from handlers.handover.jobs import jobs
from handlers.handover.routes import router

feature = Feature("handover", texts=Feature.texts_beside(__file__), routers=lambda config: [router], jobs=jobs)
