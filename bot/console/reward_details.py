"""What the member center's mall shows of a reward, edited by operators: a description and a
picture. The picture is checked by its content and kept under a name the server makes
(``bot.member_center.pictures``); the reward stores that name, never a path."""
from __future__ import annotations

import logging

from aiohttp import web

from bot.appkeys import CONFIG, DB
from bot.console.actions import acting
from bot.console.auth import require
from bot.console.params import path_id
from bot.console.render import page
from bot.member_center import pictures
from bot.member_center.config import MEMBER_CENTER
from storage import audit, rewards

log = logging.getLogger("siyu.console")
DESCRIPTION_MAX = 500  # rewards.description


def _back(request: web.Request, notice: str) -> web.Response:
    location = request.app.router["console_rewards"].url_for().with_query(notice=notice)
    return web.Response(status=303, headers={"Location": str(location)})


@require("viewer")
async def reward_page(request: web.Request) -> web.Response:
    reward_id = path_id(request, "reward", "没有这个奖品")
    async with request.app[DB].read() as session:
        reward = await rewards.get(session, reward_id)
    if reward is None:
        raise web.HTTPNotFound(reason="没有这个奖品")
    settings = request.app[CONFIG][MEMBER_CENTER]
    return page(request, "reward.html", reward=reward, max_kb=settings.upload_max_bytes // 1024,
                shows_picture=settings.enabled and "m_reward_picture" in request.app.router)


UPLOAD_SLACK = 64 * 1024  # the form's other fields around the picture


def sized(request: web.Request) -> web.Request:
    """The reward form reads up to ``[member_center] upload_max_bytes`` (the app's body limit is
    1 MB); a body that says it is larger is refused, in Chinese, before it is read."""
    if request.content_type != "multipart/form-data":
        return request  # only a file goes past 1 MB: a form of words stays within the app's limit
    limit = request.app[CONFIG][MEMBER_CENTER].upload_max_bytes
    if request.content_length is not None and request.content_length > limit + UPLOAD_SLACK:
        raise web.HTTPRequestEntityTooLarge(limit, request.content_length,
                                            reason=f"图片太大了：最大 {limit // 1024} KB")
    return request.clone(client_max_size=limit + UPLOAD_SLACK)


async def _picture_of(request: web.Request) -> bytes:
    """The uploaded picture's bytes (none chosen: empty), read no further than the limit allows."""
    upload = (await request.post()).get("picture")
    if upload is None or upload in ("", b""):  # no file chosen: a browser sends an empty part without a name
        return b""
    if not isinstance(upload, web.FileField):
        raise web.HTTPBadRequest(reason="图片要作为文件上传")
    limit = request.app[CONFIG][MEMBER_CENTER].upload_max_bytes
    return upload.file.read(limit + 1)


@require("operator")
async def save_details(request: web.Request) -> web.Response:
    reward_id = path_id(request, "reward", "没有这个奖品")
    form = await request.post()
    description, remove = form.get("description", ""), form.get("remove_picture", "") == "1"
    if not isinstance(description, str):
        raise web.HTTPBadRequest(reason="介绍要是文字")
    description = description.strip().replace("\r\n", "\n")
    if len(description) > DESCRIPTION_MAX:
        raise web.HTTPBadRequest(reason=f"介绍最多 {DESCRIPTION_MAX} 个字")
    settings = request.app[CONFIG][MEMBER_CENTER]
    data = await _picture_of(request)
    try:
        new = await pictures.save(settings, data) if data else None
    except pictures.PictureRefused as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    try:
        async with acting(request) as ctx:
            reward = await rewards.get(ctx.session, reward_id)
            if reward is None:
                raise web.HTTPNotFound(reason="没有这个奖品")
            old, name = reward.picture, reward.name
            picture = new or (None if remove else old)
            await rewards.describe(ctx.session, reward_id, description=description or None, picture=picture)
            await audit.record(ctx.session, actor=ctx.actor, action="reward.describe", result="ok", now=ctx.now,
                               args={"reward": reward_id, "picture": picture or ""})
    except BaseException:
        await pictures.remove(settings, new)  # nothing kept of a change not saved
        raise
    if old and old != picture:
        await pictures.remove(settings, old)  # no reward shows it any more
    log.info("console: %s changed reward %d's description/picture", ctx.actor, reward_id)
    return _back(request, f"奖品「{name}」的介绍和图片已保存")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/console/rewards/{reward}", reward_page, name="console_reward")
    r.add_post("/console/rewards/{reward}", save_details, name="console_reward_edit")
