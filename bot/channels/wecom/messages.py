"""What a decrypted WeCom callback means: its dedup key, and the updates or group change in it.

Parsing is wechatpy's (``wechatpy.work.parse_message``, xmltodict with entities disabled);
the fields wechatpy leaves out (MemChangeList, LastMemVer, CurMemVer) are read from its raw dict.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wechatpy.work import parse_message

from bot.channels.wecom.crypto import CallbackError
from bot.update import CONTACT_ADDED, CONTACT_LOST, MEMBER_JOINED, MEMBER_LEFT, Update
from storage import relationships

NAME = "wecom"


@dataclass
class GroupChange:
    """A change_external_chat event: what to apply to the stored group."""

    chat_id: str
    change_type: str  # create | update | dismiss
    detail: str | None  # add_member | del_member | change_owner | change_name | change_notice
    last_version: str | None
    current_version: str | None


@dataclass
class Inbound:
    key: str
    updates: list[Update] = field(default_factory=list)
    group_change: GroupChange | None = None
    # A welcome code is valid 20 s: such a callback skips the queue (wecom.md §0, §3.4).
    urgent: bool = False
    # kf_msg_or_event: (Token, OpenKfId) to pull the 微信客服 messages with (wecom.md §3.11).
    kf: tuple[str, str] | None = None
    # change_contact / delete_user: a staff member left the company (删除成员事件, developer.work.
    # weixin.qq.com/document/path/90970; binarywang/WxJava:weixin-java-cp/src/main/java/me/chanjar/
    # weixin/cp/constant/WxCpConsts.java: CHANGE_CONTACT = "change_contact", DELETE_USER = "delete_user").
    staff_left: str | None = None


def dedup_key(data: dict[str, Any], plaintext: bytes) -> str:
    """MsgId when there is one; for 微信客服 callbacks their account and Token; for 客户联系
    events (FromUserName ``sys``, which makes sender + CreateTime collide) a digest of the
    plaintext; else sender + time + event."""
    if data.get("MsgId"):
        return f"{NAME}:msg:{data['MsgId']}"
    if data.get("Event") == "kf_msg_or_event":
        # A real kf_msg_or_event has no FromUserName (ToUserName, CreateTime, MsgType, Event,
        # Token, OpenKfId: silenceper/wechat:work/kf/callback.go CallbackMessage; wecom.md §3.11),
        # so sender + time would make two accounts' callbacks of one second one key, and the
        # second would never be pulled. Each callback carries its own Token: key by it and the
        # account (hashed: a Token may be 128 bytes, the key at most 200).
        token = hashlib.sha256(str(data.get("Token") or "").encode()).hexdigest()[:32]
        return f"{NAME}:kf:{str(data.get('OpenKfId') or '')[:64]}:{token}"
    sender = str(data.get("FromUserName") or "")
    if sender == "sys":
        return f"{NAME}:sys:{hashlib.sha256(plaintext).hexdigest()}"
    return f"{NAME}:evt:{sender}:{data.get('CreateTime')}:{data.get('Event')}:{data.get('ChangeType', '')}"


def _items(raw: Any) -> list[str]:
    """MemChangeList/Item: one string, a list, or an older comma-joined form (wecom.md §3.2)."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        raw = raw.get("Item")
    values = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for value in values:
        if isinstance(value, str):
            out.extend(v.strip() for v in value.split(",") if v.strip())
    return list(dict.fromkeys(out))


def parse(plaintext: bytes) -> Inbound:
    """Raises ``CallbackError`` for XML that is malformed or declares entities."""
    try:
        message = parse_message(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CallbackError(f"message is not valid XML: {type(exc).__name__}") from None
    except Exception as exc:  # expat errors and anything else a hostile body provokes
        raise CallbackError(f"message could not be parsed: {type(exc).__name__}") from None
    data: dict[str, Any] = getattr(message, "_data", None) or {}
    if not isinstance(data, dict):
        raise CallbackError("message is not an XML document with fields")
    key = dedup_key(data, plaintext)
    at = _created(data)
    inbound = Inbound(key)
    msg_type, event = data.get("MsgType"), data.get("Event")
    if msg_type == "text":
        # Internal members writing to the app: this is how operators send commands.
        inbound.updates.append(Update(
            channel=NAME, key=key, sender=str(data.get("FromUserName") or ""), at=at,
            text=str(data.get("Content") or "").strip() or None, stored=True,
        ))
    elif msg_type == "event" and event == "change_external_contact":
        _contact_change(inbound, data, at)
    elif msg_type == "event" and event == "change_external_chat":
        _chat_change(inbound, data, at)
    elif msg_type == "event" and event == "kf_msg_or_event":
        if not data.get("Token") or not data.get("OpenKfId"):
            raise CallbackError("kf_msg_or_event without Token or OpenKfId")
        inbound.kf = (str(data["Token"]), str(data["OpenKfId"]))
    elif msg_type == "event" and event == "change_contact" and data.get("ChangeType") == "delete_user":
        inbound.staff_left = str(data.get("UserID") or "") or None
    return inbound


def _created(data: dict[str, Any]) -> datetime:
    try:
        return datetime.fromtimestamp(int(data.get("CreateTime") or 0), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise CallbackError("CreateTime is not a timestamp") from None


def _contact_change(inbound: Inbound, data: dict[str, Any], at: datetime) -> None:
    change = data.get("ChangeType")
    customer = data.get("ExternalUserID")
    if not customer:
        return
    if change in ("add_external_contact", "add_half_external_contact"):
        code = data.get("WelcomeCode") or None
        inbound.urgent = code is not None
        inbound.updates.append(Update(
            channel=NAME, key=inbound.key, sender=str(customer), at=at, event=CONTACT_ADDED,
            channel_code=str(data["State"]) if data.get("State") else None,
            welcome_code=str(code) if code else None, staff=str(data.get("UserID") or "") or None, stored=True,
        ))
    elif change in ("del_external_contact", "del_follow_user"):
        inbound.updates.append(Update(
            channel=NAME, key=inbound.key, sender=str(customer), at=at, event=CONTACT_LOST,
            staff=str(data.get("UserID") or "") or None, stored=True, ended_by=_ended_by(change, data.get("Source")),
        ))


def _ended_by(change: str, source: object) -> str:
    """How a contact ended. del_external_contact: the staff member deleted the customer;
    del_follow_user: the customer deleted the staff member; either with Source
    DELETE_BY_TRANSFER: a handover (在职继承) moved the customer to a colleague, which is no loss.
    Sources: developer.work.weixin.qq.com/document/path/92130 (客户联系事件: "删除客户的操作来源，
    DELETE_BY_TRANSFER表示此客户是因在职继承自动被转接成员删除"), as parsed by
    wechatpy/wechatpy:wechatpy/work/events.py (ChangeExternalContactEvent.del_source = Source); wecom.md §3.1."""
    if source == "DELETE_BY_TRANSFER":
        return relationships.BY_TRANSFER
    return relationships.BY_CUSTOMER if change == "del_follow_user" else relationships.BY_STAFF


def _chat_change(inbound: Inbound, data: dict[str, Any], at: datetime) -> None:
    chat_id = data.get("ChatId")
    if not chat_id:
        raise CallbackError("change_external_chat without ChatId")
    detail = data.get("UpdateDetail")
    inbound.group_change = GroupChange(
        chat_id=str(chat_id), change_type=str(data.get("ChangeType") or ""), detail=str(detail) if detail else None,
        last_version=data.get("LastMemVer") or None, current_version=data.get("CurMemVer") or None,
    )
    if detail in ("add_member", "del_member"):
        event = MEMBER_JOINED if detail == "add_member" else MEMBER_LEFT
        for person in _items(data.get("MemChangeList")):
            # One callback, several members: each gets an update of its own, so a restart
            # halfway through repeats none of them.
            inbound.updates.append(Update(
                channel=NAME, key=f"{inbound.key}:{person}", sender=person, at=at, event=event, chat=str(chat_id),
            ))
