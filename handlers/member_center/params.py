"""What the member center reads from a request, checked before a page sees it: parameters and
form fields without control characters, cookies that are text, a POST's form well-formed. A
problem is a 400 with a reason in Chinese. Files come only to the routes that take them
(``UPLOADS``: a task's photo), within ``[member_center] upload_max_bytes``."""
from __future__ import annotations

import re

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.http import BadRequest, control_char_param, header
from bot.numbers import parse_int

# A form field may hold line breaks and tabs (a typed answer), no other control character.
FORM_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
FIELD_MAX = 2000  # characters in one form field: a long answer, not a payload
UPLOADS = web.AppKey("member_center_upload_routes", set[str])  # route names that take a file


DOT_SEGMENT = re.compile(r"/(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


async def check(request: web.Request) -> None:
    if DOT_SEGMENT.search(request.raw_path.split("?", 1)[0]):
        # "/m/static/.." is not a file: refused, rather than quietly read as another page.
        raise web.HTTPBadRequest(reason="地址不对")
    if (name := control_char_param(request)) is not None:
        raise web.HTTPBadRequest(reason=f"参数 {name} 含有控制字符")
    try:
        header(request, "Cookie")
    except BadRequest:
        raise web.HTTPBadRequest(reason="Cookie 不是有效的文本，请清除本站 Cookie 后重试") from None
    if request.method != "POST":
        return
    try:
        form = await request.post()  # aiohttp keeps it: pages read request.post() afterwards
    except web.HTTPException:
        raise  # too large: aiohttp's 413 says so
    except (ValueError, LookupError, UnicodeError, AssertionError, HttpProcessingError):
        raise web.HTTPBadRequest(reason="表单格式不对") from None
    takes_files = request.match_info.route.name in request.app.get(UPLOADS, set())
    for key, value in form.items():
        if FORM_CONTROL.search(key):
            raise web.HTTPBadRequest(reason="表单字段名含有控制字符")
        if isinstance(value, str):
            if FORM_CONTROL.search(value):
                raise web.HTTPBadRequest(reason=f"表单字段 {key[:32]} 含有控制字符")
            if len(value) > FIELD_MAX:
                raise web.HTTPBadRequest(reason=f"表单字段 {key[:32]} 太长了")
        elif not takes_files:
            raise web.HTTPBadRequest(reason="这里不接受文件")


def form_int(value: object, name: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high`` in a form field (the option of a vote, a reward's number)."""
    number = parse_int(value, low, high) if isinstance(value, str) else None
    if number is None:
        raise web.HTTPBadRequest(reason=f"{name}应为 {low} 到 {high} 的整数")
    return number
