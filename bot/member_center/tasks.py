"""The member center's tasks page (任务): today's tasks and their rules, what I did today and
this week, my check-ins waiting for review and decided; 打卡 with a link or words and/or a
photo, through ``handlers.tasks.services.check_in`` (the chat's 「打卡」 checks in there too:
the same caps, approval queue, points, pending days and level-up); and my own photos."""
from __future__ import annotations

import asyncio
import logging
from typing import IO

from aiohttp import web

import bot.member_center.uploads as uploads
from bot import periods
from bot.appkeys import CONFIG, DB
from bot.context import Context
from bot.member_center.actions import act, back
from bot.member_center.auth import VISITOR, member_only, now_of, settings
from bot.member_center.params import UPLOADS, size_text, too_large
from bot.member_center.render import notice_of, page
from bot.numbers import parse_id
from handlers.tasks import services as task_services
from storage import task_definitions, tasks

log = logging.getLogger("siyu.member_center")
PROOF_MAX = 500  # characters of a link or note: what a reviewer reads
SHOWN = 30  # my latest check-ins on the page


@member_only
async def tasks_page(request: web.Request) -> web.Response:
    visitor, config = request[VISITOR], request.app[CONFIG]
    now = now_of(request)
    since = {period: periods.current(period, now, config.zone)[0] for period in ("day", "week", "month")}
    async with request.app[DB].read() as s:
        active = await task_definitions.active(s)
        done = {period: await tasks.counts_since(s, visitor.member_id, start) for period, start in since.items()}
        mine = await tasks.of_member(s, visitor.member_id, limit=SHOWN)
    rows = []
    for task in active:
        counts = {period: done[period].get(task.name, 0) for period in since}
        full = any(limit and counts[period] >= limit for period, limit in
                   (("day", task.per_day), ("week", task.per_week), ("month", task.per_month)))
        rows.append({"task": task, "today": counts["day"], "week": counts["week"], "full": full})
    return page(request, "tasks.html", notice=notice_of(request), rows=rows,
                pending=[c for c in mine if c.status == tasks.PENDING],
                decided=[c for c in mine if c.status != tasks.PENDING],
                max_size=size_text(settings(request).upload_max_bytes), proof_max=PROOF_MAX)


def _read_all(file: IO[bytes], limit: int) -> bytes | None:
    """The uploaded file's bytes; None when it holds more than ``limit``."""
    file.seek(0)
    data = file.read(limit + 1)
    return None if len(data) > limit else data


async def _photo(request: web.Request, field: object) -> str | None:
    """The form's photo, checked by its content and kept under a server-made name; None if none was sent."""
    if not isinstance(field, web.FileField):
        return None  # an empty file input comes as an empty text field
    limit = settings(request).upload_max_bytes
    data = await asyncio.to_thread(_read_all, field.file, limit)
    if data is None:
        raise too_large(request)
    if not data:
        return None
    ext = uploads.sniff(data)
    if ext is None:
        log.info("member center: member %d sent a file that is not a JPEG, PNG or WebP picture",
                 request[VISITOR].member_id)
        raise web.HTTPUnsupportedMediaType(reason="只能上传 JPG、PNG 或 WebP 图片（照片或截图）")
    return await uploads.store(settings(request), data, ext)


@member_only
async def task_checkin(request: web.Request) -> web.StreamResponse:
    """打卡 on the page: the task named in the path, a link or words and/or a photo."""
    name = request.match_info["name"]
    async with request.app[DB].read() as s:
        if name not in {t.name for t in await task_definitions.active(s)}:
            raise web.HTTPNotFound(reason="没有这个任务，它可能已经下线了")
    form = await request.post()
    proof = form.get("proof", "")
    proof = proof.strip() if isinstance(proof, str) else ""
    if len(proof) > PROOF_MAX:
        raise web.HTTPBadRequest(reason=f"证明最多 {PROOF_MAX} 个字")
    photo = await _photo(request, form.get("photo"))

    async def check_in(ctx: Context) -> None:
        found = {t.name: t for t in await task_services.current(ctx)}
        task = found.get(name)
        if task is None:
            ctx.reply(ctx.texts("task_unknown", task=name[:32], tasks="、".join(found) or "—"))
            return
        await task_services.check_in(ctx, task, proof or None, photo=photo)

    kept = False
    try:
        result = await act(request, action=check_in)
        if photo is not None:
            async with request.app[DB].read() as s:
                kept = await tasks.with_photo(s, request[VISITOR].member_id, photo) is not None
    finally:
        if photo is not None and not kept:  # refused (a cap, no such task) or failed: no orphan file
            await uploads.remove(settings(request), photo)
    raise back(request, "m_tasks", "打卡没有成功，请稍后再试" if result.failed else result)


@member_only
async def task_photo(request: web.Request) -> web.StreamResponse:
    """My check-in's photo, by the check-in's number: another member's answers as one that does not exist."""
    checkin_id = parse_id(request.match_info["checkin"])
    async with request.app[DB].read() as s:
        found = await task_services.get(s, checkin_id) if checkin_id is not None else None
    if found is None or found.member_id != request[VISITOR].member_id:
        raise web.HTTPNotFound(reason="没有这张图片")
    return uploads.response(settings(request), found.photo)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/m/tasks", tasks_page, name="m_tasks")
    r.add_post("/m/tasks/{name}/checkin", task_checkin, name="m_task_checkin")
    r.add_get("/m/tasks/photos/{checkin}", task_photo, name="m_task_photo")
    app.setdefault(UPLOADS, set()).add("m_task_checkin")
