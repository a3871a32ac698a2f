"""What the member center reads from a request, checked before a page sees it: parameters and
form fields without control characters, cookies that are text, a POST's form well-formed. A
problem is a 400 with a reason in Chinese. Files come only to the routes that take them
(``UPLOADS``: a task's photo), within ``[member_center] upload_max_bytes``."""
from __future__ import annotations

import re

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.appkeys import CONFIG
from bot.http import BadRequest, control_char_param, header
from bot.member_center.config import MEMBER_CENTER
from bot.numbers import parse_int

# A form field may hold line breaks and tabs (a typed answer), no other control character.
FORM_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
FIELD_MAX = 2000  # characters in one form field: a long answer, not a payload
UPLOADS = web.AppKey("member_center_upload_routes", set[str])  # route names that take a file
UPLOAD_SLACK = 64 * 1024  # bytes of a photo's form besides the photo: its other fields, the part headers


DOT_SEGMENT = re.compile(r"/(?:\.|%2e){1,2}(?:/|$)", re.IGNORECASE)


def _takes_files(request: web.Request) -> bool:
    return request.match_info.route.name in request.app.get(UPLOADS, set())


def size_text(size: int) -> str:
    """Bytes as a member reads them: "5 MB", "500 KB"."""
    return f"{size / 1024 / 1024:.3g} MB" if size >= 1024 * 1024 else f"{size / 1024:.3g} KB"


def too_large(request: web.Request) -> web.HTTPRequestEntityTooLarge:
    """A 413 that says in Chinese what was too large."""
    if _takes_files(request):
        limit = size_text(request.app[CONFIG][MEMBER_CENTER].upload_max_bytes)
        reason = f"图片太大了：最大 {limit}，请换一张小一点的图片"
    else:
        reason = "提交的内容太多了"
    return web.HTTPRequestEntityTooLarge(0, request.content_length or 0, reason=reason)


def sized(request: web.Request) -> web.Request:
    """A route that takes a photo reads up to ``upload_max_bytes`` (and its form around it)
    instead of the app's body limit; a body that says it is larger is refused before it is read."""
    if request.method != "POST" or not _takes_files(request):
        return request
    limit = request.app[CONFIG][MEMBER_CENTER].upload_max_bytes + UPLOAD_SLACK
    if request.content_length is not None and request.content_length > limit:
        raise too_large(request)
    return request.clone(client_max_size=limit)  # aiohttp stops reading there (a chunked body too)


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
    except web.HTTPRequestEntityTooLarge:
        raise too_large(request) from None
    except web.HTTPException:
        raise
    except (ValueError, LookupError, UnicodeError, AssertionError, HttpProcessingError):
        raise web.HTTPBadRequest(reason="表单格式不对") from None
    takes_files = _takes_files(request)
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
