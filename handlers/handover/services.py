"""Handovers as the chat command and the REST API ask for them, and where they stand in
operators' words. A handover is carried out by the channel that can transfer contacts
(``Capability.TRANSFER_CONTACTS``, WeCom's 在职/离职继承): this feature only writes the request,
checked, and reports; it never names the channel."""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.base import Capability
from bot.config import Config
from bot.texts import Texts
from storage import handovers
from storage.handovers import Handover

SCOPES = handovers.SCOPES
MODES = handovers.MODES
# Operators' words for the scope and the mode, and siyu's own.
SCOPE_WORDS = {"customers": "customers", "客户": "customers", "groups": "groups", "群": "groups", "客户群": "groups",
               "all": "all", "全部": "all"}
MODE_WORDS = {"onjob": "onjob", "在职": "onjob", "resigned": "resigned", "离职": "resigned"}
# A WeCom UserID: letters, digits and _ . @ -, at most 64 bytes.
STAFF = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class Refused(Exception):
    """A handover that cannot be asked for: ``key`` (a text of this feature) says why."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key, self.values = key, values

    def text(self, texts: Texts) -> str:
        return texts(self.key, **self.values)


def channel_for(config: Config) -> str | None:
    """The running channel that can hand contacts over, if any."""
    for kind in config.channels:
        if kind.enabled(config):
            for name, can in kind.capabilities.items():
                if Capability.TRANSFER_CONTACTS in can:
                    return name
    return None


async def request(session: AsyncSession, config: Config, *, from_staff: str, to_staff: str, scope: str,
                  mode: str | None, requested_by: str, now: datetime) -> Handover:
    """Check and record a handover; the channel starts it on its next round. ``mode`` None:
    离职继承 for a staff member known to have left, 在职继承 otherwise."""
    for staff in (from_staff, to_staff):
        if not STAFF.fullmatch(staff):
            raise Refused("handover_bad_staff", staff=staff[:64])
    if from_staff == to_staff:
        raise Refused("handover_same_staff")
    channel = channel_for(config)
    if channel is None:
        raise Refused("handover_no_channel")
    busy = await handovers.open_for(session, from_staff)
    if busy is not None:
        raise Refused("handover_busy", staff=from_staff, id=busy.id)
    if mode is None:
        mode = "resigned" if await handovers.departed(session, channel, [from_staff]) else "onjob"
    return await handovers.create(session, channel=channel, scope=scope, mode=mode, from_staff=from_staff,
                                  to_staff=to_staff, requested_by=requested_by, now=now)


async def get(session: AsyncSession, handover_id: int) -> Handover | None:
    return await handovers.get(session, handover_id)


async def counts(session: AsyncSession, handover_id: int) -> dict[str, dict[str, int]]:
    """{kind: {status: n}} (customer, group; waiting, done, refused, failed)."""
    out: dict[str, dict[str, int]] = {}
    for (kind, status), n in (await handovers.counts(session, handover_id)).items():
        out.setdefault(kind, {})[status] = n
    return out


def _words(texts: Texts, h: Handover) -> dict[str, object]:
    return {"id": h.id, "from_staff": h.from_staff, "to_staff": h.to_staff,
            "scope": texts.label("handover_scope", h.scope), "mode": texts.label("handover_mode", h.mode),
            "status": texts.label("handover_state", h.status)}


def _counts(texts: Texts, by_kind: dict[str, dict[str, int]]) -> str:
    parts = [texts("handover_count", kind=texts.label("handover_kind", kind), status=texts.label("handover_item", s),
                   count=by_kind[kind][s])
             for kind in ("customer", "group") for s in handovers.ITEM_STATUSES if by_kind.get(kind, {}).get(s)]
    return "，".join(parts) or texts("handover_no_items")


async def status_text(session: AsyncSession, texts: Texts, h: Handover) -> str:
    return texts("handover_status", **_words(texts, h), counts=_counts(texts, await counts(session, h.id)))


def reason_text(texts: Texts, code: str) -> str:
    """A stored reason (a platform's error code, or a word) in operators' words."""
    key = f"handover_reason_{code}"
    return texts(key) if key in texts else texts("handover_reason_code", code=code[:32])


async def report_text(session: AsyncSession, texts: Texts, h: Handover) -> str:
    """The report of a finished handover: the counts, some that did not move, the error."""
    problems = await handovers.reasons(session, h.id)
    extra = texts("handover_problem", items="；".join(f"{t}（{reason_text(texts, r)}）" for t, r in problems)
                  ) if problems else ""
    if h.error:
        extra += texts("handover_error", error=reason_text(texts, h.error))
    return texts("handover_finished", **_words(texts, h), counts=_counts(texts, await counts(session, h.id)),
                 problems=extra)
