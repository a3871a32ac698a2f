"""Link and mini-program cards on broadcasts and playbooks (issue 18 §5).

A card is kept channel-neutral, ``{"type": "link", "title", "url", "desc", "picurl"}`` or
``{"type": "miniprogram", "title", "appid", "page", "pic_media_id"}``; a channel that can show
it (``Capability.GROUP_CARDS``: WeCom's ``add_msg_template`` attachments) gets it beside the
text, every other gets the text with the card's title and URL after it.

WeCom's rules, from the parameter table of developer.work.weixin.qq.com/document/path/92135
(as quoted in SDK comments: ``find_string "图文消息的链接，最长2048个字节"``, ``"小程序消息标题，最多64个字节"``)
and the shapes of silenceper/wechat:work/externalcontact/msg.go (``AttachmentLink``,
``AttachmentMiniProgram``) and WxJava's ``bean/external/msg/Link.java``, ``MiniProgram.java``
(xz-wtx/WxJava, a copy of binarywang/WxJava): link title required, at most 128 bytes; desc at
most 512 bytes; picurl and url at most 2048 bytes, url required; mini-program title at most 64
bytes, pic_media_id, appid and page required. https only is siyu's rule: a card opens in the
customer's WeChat, and a plain-http page there can be read and changed on the way.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bot import links
from bot.channels.base import cap_bytes
from bot.config import read_texts
from bot.texts import Texts

LINK, MINIPROGRAM = "link", "miniprogram"
LIMITS = {  # bytes, UTF-8 (see the module's sources)
    (LINK, "title"): 128, (LINK, "desc"): 512, (LINK, "url"): 2048, (LINK, "picurl"): 2048,
    (MINIPROGRAM, "title"): 64,
    # No documented bound for these two: ours, far above any real page path or media id.
    (MINIPROGRAM, "page"): 1024, (MINIPROGRAM, "pic_media_id"): 512,
}
FIELDS = {LINK: ("title", "url", "desc", "picurl"), MINIPROGRAM: ("title", "appid", "page", "pic_media_id")}
REQUIRED = {LINK: ("title", "url"), MINIPROGRAM: ("title", "appid", "page", "pic_media_id")}
URL_FIELDS = ("url", "picurl")
# Placeholders whose value is itself a URL: put in as they are, at the start of a URL field.
URL_VALUES = frozenset({"member_center"})
PLACEHOLDER = re.compile(r"\{([a-z_]+(?::[a-z_]+)?)\}")  # {member_center:mall}: a page (``bot.links``)
# An https URL with a host (no user:password@ in front of it: that shows one site and opens
# another), printable ASCII (the rest percent-encoded), placeholders allowed; or {member_center}
# and a path, query or fragment after it ("{member_center}@evil" would make the member center's
# host a user name). The same pattern is in the REST API's OpenAPI file.
URL = re.compile(r"https://[A-Za-z0-9._~%!$&'()*+,;={}-]+(:[0-9]*)?([/?#][\x21-\x7e]*)?"
                 r"|\{member_center(:[a-z_]+)?\}([/?#][\x21-\x7e]*)?")
# A mini-program's appid: "wx" and 16 letters or digits (wechatpy's example: wx8bd80126147dfAAA).
APPID = re.compile(r"wx[0-9A-Za-z]{16}")
ASCII_WORD = re.compile(r"[\x21-\x7e]+")
# The feature's own texts, for config errors (found before any [texts] override is read).
DEFAULT_TEXTS = Texts(read_texts(Path(__file__).with_name("texts.toml")))

Problem = tuple[str, dict[str, Any]]


def _fill_url(template: str, values: Mapping[str, str]) -> str:
    """Fill a URL: a URL value ({member_center}) as it is where the URL starts with it, every
    other value percent-encoded (a group's name must not end the path or add a parameter). A
    URL value's query (its campaign, ``?c=``) goes to the end: ``{member_center}/new?x=1`` is
    ``…/m/new?x=1&c=…``."""
    query = ""

    def one(m: re.Match[str]) -> str:
        nonlocal query
        name = m.group(1)
        if name not in values:
            return m.group(0)
        if name.partition(":")[0] in URL_VALUES and m.start() == 0:
            if m.end() == len(template):
                return values[name]
            base, _, rest = values[name].partition("?")
            query, base = rest.partition("#")[0], base.partition("#")[0]
            return base.rstrip("/") if template[m.end()] == "/" else base  # ".../m/" + "/mall"
        return quote(values[name], safe="")

    filled = PLACEHOLDER.sub(one, template)
    return links.with_query(filled, query) if query else filled


def url_problem(field: str, template: str) -> Problem | None:
    """Why ``template`` is not an https URL a card may carry (None if it is)."""
    if not template.startswith(("https://", "{member_center}", "{member_center:")):
        return "card_url_https", {"field": field}
    if not URL.fullmatch(template):
        return "card_url_invalid", {"field": field}
    return None


def normalize(card: Mapping[str, Any]) -> dict[str, Any]:
    """An operator's card with the non-ASCII characters of its URLs percent-encoded (a
    Chinese path pasted from a browser) and the spaces around its values taken off."""
    out = {k: (v.strip() if isinstance(v, str) else v) for k, v in card.items()}
    for field in URL_FIELDS:
        if isinstance(out.get(field), str):
            out[field] = "".join(c if ord(c) < 0x80 else quote(c, safe="") for c in out[field])
    return out


def cut(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card with its title and description cut to WeCom's limits (the REST API's rule)."""
    return {k: cap_bytes(v, LIMITS[(card["type"], k)]) if k in ("title", "desc") and isinstance(v, str)
            and (card["type"], k) in LIMITS else v for k, v in card.items()}


def problems(card: Mapping[str, Any], *, member_center_url: str | None = None) -> list[Problem]:
    """What is wrong with ``card`` (a text key and its values each), none if it can be sent."""
    kind = card.get("type")
    if kind not in FIELDS:
        return [("card_kind_unknown", {})]
    found: list[Problem] = []
    unknown = sorted(set(card) - {"type", *FIELDS[kind]})
    if unknown:
        found.append(("card_field_unknown", {"fields": "、".join(str(u)[:32] for u in unknown[:5])}))
    for field in FIELDS[kind]:
        value = card.get(field, "")
        if not isinstance(value, str):
            found.append(("card_field_not_text", {"field": field}))
            continue
        if not value:
            if field in REQUIRED[kind]:
                found.append(("card_field_missing", {"field": field}))
            continue
        limit = LIMITS.get((kind, field))
        if limit is not None and len(value.encode()) > limit:
            found.append(("card_too_long", {"field": field, "limit": limit, "size": len(value.encode())}))
        if field in URL_FIELDS and (problem := url_problem(field, value)) is not None:
            found.append(problem)
        if field == "appid" and not APPID.fullmatch(value):
            found.append(("card_appid_invalid", {}))
        if field == "pic_media_id" and not ASCII_WORD.fullmatch(value):
            found.append(("card_media_id_invalid", {}))
        if field == "page" and not ASCII_WORD.fullmatch(value):
            found.append(("card_page_invalid", {}))
        if any(n.partition(":")[0] == "member_center" for n in PLACEHOLDER.findall(value)) and not member_center_url:
            found.append(("card_member_center_unset", {"field": field}))
    return found


def explain(texts: Texts, found: list[Problem]) -> str:
    """The problems in the operator's words, one sentence each."""
    return "；".join(texts(key, **{**values, "field": texts(f"card_field_{values['field']}")}
                         if "field" in values else values) for key, values in found)


def render(card: Mapping[str, Any], values: Mapping[str, str], *, cut: bool = True) -> dict[str, Any]:
    """The card with its placeholders filled. In a URL a value is percent-encoded (a group's name
    must not end the query), except a URL value such as {member_center}; texts over WeCom's
    limits after filling are cut on a character boundary."""
    out: dict[str, Any] = {"type": card["type"]}
    for field in FIELDS[card["type"]]:
        template = str(card.get(field) or "")
        if not template:
            continue
        if field in URL_FIELDS:
            value = _fill_url(template, values)
        else:
            value = PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
            limit = LIMITS.get((card["type"], field))
            if cut and limit is not None:
                value = cap_bytes(value, limit)
        out[field] = value
    return out


def sendable(card: Mapping[str, Any]) -> bool:
    """A filled card still fit to send: its URLs https after filling (a {member_center} left
    unfilled, its setting since removed, is not) and within WeCom's limits."""
    urls = [str(card.get(f) or "") for f in URL_FIELDS]
    return all(not u or u.startswith("https://") for u in urls) and not problems(card, member_center_url="filled")


def fallback(texts: Texts, text: str, card: Mapping[str, Any]) -> str:
    """What a channel without cards gets: the text, then the card's title and URL."""
    if card["type"] == LINK:
        return f"{text}\n\n{texts('card_fallback_link', title=card['title'], url=card['url'])}"
    return f"{text}\n\n{texts('card_fallback_miniprogram', title=card['title'])}"


def preview(texts: Texts, card: Mapping[str, Any]) -> str:
    """The card as the operator's preview (and the console) shows it."""
    if card["type"] == LINK:
        return texts("card_preview_link", title=card.get("title", ""), url=card.get("url", ""),
                     desc=card.get("desc") or "—")
    return texts("card_preview_miniprogram", title=card.get("title", ""), appid=card.get("appid", ""),
                 page=card.get("page", ""))


def used_placeholders(card: Mapping[str, Any] | None) -> str:
    """The card's fields joined: what the planner scans for placeholders."""
    return " ".join(str(v) for k, v in (card or {}).items() if k != "type")


# The chat syntax: lines "项目：值" after the text (ASCII names as in config work too).
LINE_NAMES = {"标题": "title", "链接": "url", "描述": "desc", "封面": "picurl", "小程序": "appid", "页面": "page",
              "封面素材": "pic_media_id", **{f: f for f in ("title", "url", "desc", "picurl", "appid", "page",
                                                          "pic_media_id")}}
CARD_LINE = re.compile(r"^\s*(" + "|".join(sorted(LINE_NAMES, key=len, reverse=True)) + r")\s*[:：]\s*(.*?)\s*$")
MINI_ONLY = frozenset({"appid", "page", "pic_media_id"})
LINK_ONLY = frozenset({"url", "desc", "picurl"})


def from_lines(content: str) -> tuple[str, dict[str, str] | None, list[Problem]]:
    """Split an operator's message into its text and the card its last lines give
    (``标题：…`` ``链接：…``): (text, card or None, problems)."""
    lines = content.splitlines()
    fields: dict[str, str] = {}
    while lines and (m := CARD_LINE.match(lines[-1])):
        fields.setdefault(LINE_NAMES[m.group(1)], m.group(2))  # the later line of a repeated name wins
        lines.pop()
    text = "\n".join(lines).strip()
    if not fields:
        return text, None, []
    if fields.keys() & MINI_ONLY and fields.keys() & LINK_ONLY:
        return text, None, [("card_one_kind", {})]
    card = normalize({"type": MINIPROGRAM if fields.keys() & MINI_ONLY else LINK, **fields})
    return text, card, []
