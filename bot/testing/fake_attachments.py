"""What the fake WeCom checks in ``add_msg_template``'s attachments (link and mini-program
cards ...), kept beside the fake so its answers stay close to WeCom's."""
from __future__ import annotations

from typing import Any

# What each attachment of add_msg_template must have (developer.work.weixin.qq.com/document/
# path/92135; silenceper/wechat:work/externalcontact/msg.go): at most 9, and text and
# attachments not both empty.
ATTACHMENT_REQUIRED = {"image": (), "link": ("title", "url"), "miniprogram": ("title", "pic_media_id", "appid", "page"),
                       "video": ("media_id",), "file": ("media_id",)}


def attachments_problem(text: Any, attachments: Any) -> str | None:
    """Why WeCom would refuse these attachments (None: it takes them)."""
    if not isinstance(attachments, list) or len(attachments) > 9:
        return "attachments: a list of at most 9"
    if not attachments and not (isinstance(text, dict) and text.get("content")):
        return "text and attachments both empty"
    for item in attachments:
        kind = item.get("msgtype") if isinstance(item, dict) else None
        if kind not in ATTACHMENT_REQUIRED or not isinstance(item.get(kind), dict):
            return f"invalid attachment msgtype {kind!r}"
        missing = [f for f in ATTACHMENT_REQUIRED[kind] if not item[kind].get(f)]
        if missing:
            return f"{kind} attachment missing {', '.join(missing)}"
    return None
