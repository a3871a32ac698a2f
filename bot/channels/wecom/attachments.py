"""Cards as WeCom attachments: a broadcast's link or mini-program card (channel-neutral, see
``handlers.broadcasts.cards``) in the shape ``add_msg_template`` takes.

Shapes: developer.work.weixin.qq.com/document/path/92135 (wecom.md §3.4, §3.5), as in
silenceper/wechat:work/externalcontact/msg.go (``Attachment``, ``AttachmentLink``,
``AttachmentMiniProgram``) and WxJava's ``me.chanjar.weixin.cp.bean.external.msg.Attachment``:
``{"msgtype": "link", "link": {"title", "picurl", "desc", "url"}}`` and
``{"msgtype": "miniprogram", "miniprogram": {"title", "pic_media_id", "appid", "page"}}``.
"""
from __future__ import annotations

from typing import Any

FIELDS = {"link": ("title", "picurl", "desc", "url"), "miniprogram": ("title", "pic_media_id", "appid", "page")}
# At most 9 attachments a task (92135: "附件，最多支持添加9个附件").
MAX_ATTACHMENTS = 9


def attachment(card: Any) -> dict[str, Any] | None:
    """One card as an attachment; None for something that is not a card siyu knows."""
    if not isinstance(card, dict) or card.get("type") not in FIELDS:
        return None
    kind = str(card["type"])
    # Optional fields left empty are left out: WeCom shows an empty desc or picurl as blank.
    return {"msgtype": kind, kind: {f: str(card[f]) for f in FIELDS[kind] if card.get(f)}}


def attachments_of(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The attachments of an outbox row: ``meta["cards"]`` (a digest) or ``meta["card"]``."""
    many = meta.get("cards")
    found: list[Any] = many if isinstance(many, list) else [meta.get("card")]
    out = [a for a in (attachment(c) for c in found) if a is not None]
    return out[:MAX_ATTACHMENTS]
