"""The member center's tasks page (任务): 打卡 with a link or a photo through the chat's own
check-in (the same caps, approval queue and points), photos checked by their content and size,
kept under a server-made name, shown only to their member and to the console; CSRF."""
from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from sqlalchemy import func, select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage import points
from storage.models import Member, TaskCheckin

PASSWORD = "operator-password-1"
MAX_BYTES = 20_000
TASKS = [{"name": "转发文章", "points": 20, "per_day": 1, "proof": True},
         {"name": "晒单", "points": 50, "per_day": 0, "approval": True, "proof": True}]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(500)


@pytest.fixture
def upload_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
async def bot(make_config: Callable[..., Config], clock: FakeClock, upload_dir: Path) -> AsyncIterator[SandboxClient]:
    config = make_config(operators={"admins": ["sandbox:op1"]},
                         console={"users": [{"name": "ops", "password": PASSWORD, "role": "operator"}],
                                  "secret": "s" * 32},
                         member_center={"upload_dir": str(upload_dir), "upload_max_bytes": MAX_BYTES})
    config = config.model_copy(update={"tasks": SiyuConfig.model_validate({"tasks": TASKS}).tasks})
    async with sandbox_app(config, clock=clock) as client:
        yield client


def notice(page: str) -> str:
    found = re.search(r'<p class="notice"[^>]*>(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def form(csrf: str | None, proof: str = "", photo: bytes | None = None, filename: str = "我的截图.png",
         content_type: str = "image/png") -> FormData:
    data = FormData()
    if csrf is not None:
        data.add_field("csrf", csrf)
    data.add_field("proof", proof)
    if photo is not None:
        data.add_field("photo", photo, filename=filename, content_type=content_type)
    return data


async def check_in(bot: SandboxClient, task: str, **fields: object) -> tuple[int, str]:
    """Post the task's form from the tasks page: (status, the page it leads to)."""
    csrf = csrf_of(await bot.member_page("/m/tasks"))
    resp = await bot.http.post(f"/m/tasks/{task}/checkin", data=form(csrf, **fields))  # type: ignore[arg-type]
    return resp.status, await resp.text()


async def member_id(bot: SandboxClient, who: str) -> int:
    async with bot.db.read() as s:
        return int((await s.execute(select(Member.id).where(Member.external_id == who))).scalar_one())


async def balance(bot: SandboxClient, who: str) -> int:
    async with bot.db.read() as s:
        return await points.balance(s, await member_id(bot, who))


async def checkins(bot: SandboxClient) -> list[TaskCheckin]:
    async with bot.db.read() as s:
        return list((await s.execute(select(TaskCheckin).order_by(TaskCheckin.id))).scalars())


async def test_the_page_lists_todays_tasks_with_their_rules(bot: SandboxClient) -> None:
    page = await bot.open_member_center("u1", "/m/tasks")
    assert "转发文章" in page and "+20 积分" in page and "每天最多 1 次" in page
    assert "晒单" in page and "运营审核通过后发积分" in page and "需附证明" in page
    assert 'class="here" aria-current="page">任务' in page
    assert len(page.encode()) < 50_000


async def test_a_check_in_with_a_link_credits_once_a_day_across_page_and_chat(bot: SandboxClient) -> None:
    await bot.open_member_center("u1")
    status, page = await check_in(bot, "转发文章")
    assert status == 200 and "需要附上证明" in notice(page)  # the chat's rule: proof required
    status, page = await check_in(bot, "转发文章", proof="https://mp.weixin.qq.com/s/abc")
    assert status == 200 and "打卡成功" in notice(page) and "+20 积分" in notice(page)
    assert "今天已打卡 1 次，本周 1 次" in page and "已打满" in page
    assert await balance(bot, "u1") == 20
    status, page = await check_in(bot, "转发文章", proof="again")  # a stale form: the daily cap holds
    assert "每天最多打卡 1 次" in notice(page)
    [reply] = await bot.say("u1", "打卡 转发文章 https://x", chat="g1")  # and in chat, the same cap
    assert "最多打卡 1 次" in reply["text"]
    assert await balance(bot, "u1") == 20 and len(await checkins(bot)) == 1
    assert "https://mp.weixin.qq.com/s/abc" in page and "已发积分" in page  # my record, state in Chinese


async def test_an_unknown_task_is_answered_with_a_page(bot: SandboxClient, upload_dir: Path) -> None:
    await bot.open_member_center("u1")
    status, page = await check_in(bot, "没有这个", proof="x", photo=PNG)
    assert status == 404 and "没有这个任务" in page
    assert await checkins(bot) == [] and not upload_dir.exists()  # nothing kept of it


async def test_a_photo_check_in_waits_for_review_and_the_console_sees_the_photo(
        bot: SandboxClient, upload_dir: Path) -> None:
    await bot.open_member_center("u1")
    status, page = await check_in(bot, "晒单", photo=PNG, filename="../../etc/passwd.png")
    assert status == 200 and "审核通过后发放 50 积分" in notice(page)
    [checkin] = await checkins(bot)
    assert checkin.status == "pending" and checkin.proof is None and checkin.photo is not None
    stored = list(upload_dir.iterdir())
    assert [p.name for p in stored] == [checkin.photo] and re.fullmatch(r"[0-9a-f]{32}\.png", checkin.photo)
    assert stored[0].read_bytes() == PNG  # the member's name for it went nowhere
    assert "等待审核" in page and "待审核" in page
    photo_url = f"/m/tasks/photos/{checkin.id}"
    assert photo_url in page
    resp = await bot.http.get(photo_url)
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/png" and await resp.read() == PNG
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert await balance(bot, "u1") == 0
    # The operator sees the photo in 打卡审核 and approves: the points come, the page says so.
    csrf = await bot.sign_in("ops", PASSWORD)
    queue = await (await bot.http.get("/console/tasks")).text()
    assert f'src="/console/tasks/{checkin.id}/photo"' in queue
    resp = await bot.http.get(f"/console/tasks/{checkin.id}/photo")
    assert resp.status == 200 and await resp.read() == PNG
    resp = await bot.http.post(f"/console/tasks/{checkin.id}", data={"csrf": csrf, "decision": "approve"})
    assert resp.status == 200
    assert await balance(bot, "u1") == 50
    page = await bot.open_member_center("u1", "/m/tasks")
    assert "没有等待审核的打卡" in page and "已发积分" in page and photo_url in page


async def test_a_jpeg_with_words_and_a_webp_are_taken(bot: SandboxClient, upload_dir: Path) -> None:
    await bot.open_member_center("u1")
    await check_in(bot, "晒单", proof="订单号 123", photo=JPEG, filename="x.bin", content_type="application/x-foo")
    webp = b"RIFF" + (100).to_bytes(4, "little") + b"WEBPVP8 " + bytes(100)
    await check_in(bot, "晒单", photo=webp, filename="a.png", content_type="image/png")
    first, second = await checkins(bot)
    assert first.proof == "订单号 123" and first.photo and first.photo.endswith(".jpg")
    assert second.photo and second.photo.endswith(".webp")
    resp = await bot.http.get(f"/m/tasks/photos/{second.id}")
    assert resp.headers["Content-Type"] == "image/webp"


async def test_a_file_that_is_not_a_picture_is_refused(bot: SandboxClient, upload_dir: Path) -> None:
    await bot.open_member_center("u1")
    for fake in (b"<html><script>alert(1)</script></html>", b"GIF89a" + bytes(50), b"%PDF-1.4"):
        status, page = await check_in(bot, "晒单", photo=fake, filename="photo.png", content_type="image/png")
        assert status == 415 and "只能上传 JPG、PNG 或 WebP 图片" in page
    assert await checkins(bot) == [] and not (upload_dir.exists() and list(upload_dir.iterdir()))


async def test_a_photo_over_the_limit_is_refused_with_a_clear_page(bot: SandboxClient, upload_dir: Path) -> None:
    await bot.open_member_center("u1")
    # Over upload_max_bytes within the form's slack: read, then refused.
    status, page = await check_in(bot, "晒单", photo=PNG + bytes(MAX_BYTES))
    assert status == 413 and "图片太大了" in page
    # A body that says it is far larger: refused before it is read.
    csrf = csrf_of(await bot.member_page("/m/tasks"))
    resp = await bot.http.post("/m/tasks/晒单/checkin", data=form(csrf, photo=PNG + bytes(400_000)))
    assert resp.status == 413 and "图片太大了：最大" in await resp.text()
    assert await checkins(bot) == [] and not (upload_dir.exists() and list(upload_dir.iterdir()))
    status, _ = await check_in(bot, "晒单", photo=PNG)  # a picture within the limit: taken
    assert status == 200 and len(await checkins(bot)) == 1


async def test_a_refused_check_in_keeps_no_photo(bot: SandboxClient, upload_dir: Path) -> None:
    await bot.open_member_center("u1")
    await check_in(bot, "转发文章", photo=PNG)
    status, page = await check_in(bot, "转发文章", photo=PNG)  # over the daily cap
    assert "最多打卡 1 次" in notice(page)
    [kept] = await checkins(bot)
    assert [p.name for p in upload_dir.iterdir()] == [kept.photo]


async def test_a_member_sees_only_their_own_photos(bot: SandboxClient) -> None:
    await bot.open_member_center("u1")
    await check_in(bot, "晒单", photo=PNG)
    [checkin] = await checkins(bot)
    await bot.open_member_center("u2")
    for path in (f"/m/tasks/photos/{checkin.id}", f"/m/tasks/photos/{checkin.id + 1}", "/m/tasks/photos/abc",
                 "/m/tasks/photos/0", f"/m/tasks/photos/{checkin.photo}"):
        resp = await bot.http.get(path)
        assert resp.status == 404, path
        assert await resp.read() != PNG
    page = await bot.member_page("/m/tasks")
    assert f"/m/tasks/photos/{checkin.id}" not in page
    bot.http.session.cookie_jar.clear()
    assert (await bot.http.get(f"/m/tasks/photos/{checkin.id}")).status == 401
    # The console's photo route is for signed-in console users only.
    resp = await bot.http.get(f"/console/tasks/{checkin.id}/photo", allow_redirects=False)
    assert resp.status in (302, 303, 401) and await resp.read() != PNG


async def test_a_check_in_without_the_pages_token_is_refused(bot: SandboxClient, upload_dir: Path) -> None:
    await bot.open_member_center("u1")
    for token in (None, "forged"):
        resp = await bot.http.post("/m/tasks/晒单/checkin", data=form(token, proof="x", photo=PNG))
        assert resp.status == 403 and "页面已过期" in await resp.text()
    assert await checkins(bot) == [] and not upload_dir.exists()
    async with bot.db.read() as s:
        assert (await s.execute(select(func.count()).select_from(TaskCheckin))).scalar_one() == 0


async def test_a_file_on_a_route_that_takes_none_is_refused(bot: SandboxClient) -> None:
    page = await bot.open_member_center("u1")
    resp = await bot.http.post("/m/checkin", data=form(csrf_of(page), photo=PNG))
    assert resp.status == 400 and "这里不接受文件" in await resp.text()


async def test_on_a_phone_a_member_checks_in_with_a_photo_and_nothing_overflows(
        bot: SandboxClient, browser: Any, tmp_path: Path) -> None:
    await bot.say("op1", "/vote open 下期奖品 一个名字特别特别特别特别特别特别特别长的保温杯:300:5 帆布袋:200:10")
    await bot.say("u1", "签到", chat="g1", name="名字很长很长很长很长很长很长很长很长很长很长的会员")
    context = await browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True,
                                        device_scale_factor=2, locale="zh-CN")
    page = await context.new_page()
    await page.goto(str(bot.http.make_url("/m/?as=u1")))
    await page.goto(str(bot.http.make_url("/m/tasks")))
    card = page.locator("section.card", has_text="晒单")
    await card.locator("input[name=proof]").fill("订单号 8899")
    await card.locator("input[name=photo]").set_input_files(
        {"name": "IMG_0001.PNG", "mimeType": "image/png", "buffer": PNG})
    await card.locator("button:has-text('打卡')").tap()
    await page.wait_for_selector(".notice")
    assert "审核通过后发放 50 积分" in await page.inner_text(".notice")
    assert "订单号 8899" in await page.inner_text("#pending")
    await page.goto(str(bot.http.make_url("/m/votes")))
    await page.locator("li", has_text="帆布袋").locator("button").tap()
    await page.wait_for_selector(".notice")
    assert "已投给「帆布袋」" in await page.inner_text(".notice")
    for path in ("/m/tasks", "/m/votes", "/m/ranks"):
        await page.goto(str(bot.http.make_url(path)))
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, (path, width)
        await page.screenshot(path=str(tmp_path / f"{path.strip('/').replace('/', '-')}.png"), full_page=True)
    await context.close()
