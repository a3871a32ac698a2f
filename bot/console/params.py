"""What the console reads from a request, checked before any page sees it: page numbers, ids,
dates, forms and cookies. A problem is a 400 (404 for an id) with a reason in Chinese."""
from __future__ import annotations

import re
from datetime import date

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.http import BadRequest, control_char_param, header
from bot.numbers import parse_id, parse_int

MAX_PAGE = 100_000
# Dates an operator may ask about; a year's range on either side still fits in datetime.date.
FIRST_DATE, LAST_DATE = date(1970, 1, 1), date(2999, 12, 31)
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A form field may hold line breaks and tabs (a reason typed in a textarea), no other control character.
FORM_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
FILE_ROUTES = frozenset({"console_reward_edit"})  # the only forms that take a file: a reward's picture


def query_int(request: web.Request, name: str, default: int, high: int = MAX_PAGE) -> int:
    """A whole number from 1 to ``high`` in the query (``default`` when absent or empty)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    value = parse_int(raw, 1, high)
    if value is None:
        raise web.HTTPBadRequest(reason=f"参数 {name} 应为 1 到 {high} 的整数")
    return value


def path_id(request: web.Request, name: str, missing: str = "没有这一项") -> int:
    """The row id in the path; 404 with ``missing`` if it cannot be one."""
    value = parse_id(request.match_info[name])
    if value is None:
        raise web.HTTPNotFound(reason=missing)
    return value


def query_date(request: web.Request, name: str) -> date | None:
    """A ``YYYY-MM-DD`` date in the query, from 1970 to 2999; None when absent or empty."""
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw) if ISO_DATE.fullmatch(raw) else None
    except ValueError:
        day = None
    if day is None:
        raise web.HTTPBadRequest(reason="日期格式应为 YYYY-MM-DD")
    if not FIRST_DATE <= day <= LAST_DATE:
        raise web.HTTPBadRequest(reason=f"日期应在 {FIRST_DATE} 到 {LAST_DATE} 之间")
    return day


async def check(request: web.Request) -> None:
    """What every console request must be before a page reads it: parameters without control
    characters, cookies that are text, and a POST's form well-formed (aiohttp keeps the parsed
    form, so pages read it with ``request.post()`` afterwards)."""
    if (name := control_char_param(request)) is not None:
        raise web.HTTPBadRequest(reason=f"参数 {name} 含有控制字符")
    try:
        header(request, "Cookie")
    except BadRequest:
        raise web.HTTPBadRequest(reason="Cookie 不是有效的 UTF-8 文本，请清除本站 Cookie 后重试") from None
    if request.method == "POST":
        await _read_form(request)


async def _read_form(request: web.Request) -> None:
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge as exc:  # aiohttp's reason is English
        raise web.HTTPRequestEntityTooLarge(0, request.content_length or 0, reason="提交的内容太大了") from exc
    except web.HTTPException:
        raise
    except (ValueError, LookupError, UnicodeError, AssertionError, HttpProcessingError):
        # A broken multipart body, a charset Python does not know, undecodable bytes.
        raise web.HTTPBadRequest(reason="表单格式不对") from None
    for key, value in form.items():
        if not isinstance(value, str):
            if request.match_info.route.name in FILE_ROUTES and not FORM_CONTROL.search(key):
                continue  # the page checks the file by its content
            raise web.HTTPBadRequest(reason="表单不接受文件")
        if FORM_CONTROL.search(value) or FORM_CONTROL.search(key):
            raise web.HTTPBadRequest(reason=f"表单字段 {key[:32]} 含有控制字符")
