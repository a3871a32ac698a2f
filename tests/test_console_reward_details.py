"""Operators give a reward of the points mall a description and a picture in the console; the
member center shows them. A picture is taken by its content (JPEG, PNG, WebP), within
``[member_center] upload_max_bytes``, stored under a name the server makes, and served by the
reward's id with caching headers."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.builtin import SiyuConfig
from bot.config import Config
from bot.testing import FakeClock, SandboxClient, sandbox_app
from storage.models import AuditEntry, Reward

USERS = [{"name": "ops", "password": "operator-password-1", "role": "operator"},
         {"name": "look", "password": "viewer-password-1", "role": "viewer"}]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0" + bytes(300)
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(100)


@pytest.fixture
async def console(make_config: Callable[..., Config], clock: FakeClock, tmp_path: Path) -> AsyncIterator[SandboxClient]:
    config = make_config(console={"users": USERS, "secret": "s" * 32},
                         member_center={"upload_dir": str(tmp_path / "uploads"), "upload_max_bytes": 10_000})
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate(
        {"rewards": [{"name": "保温杯", "cost": 100, "stock": 10}]}).rewards})
    async with sandbox_app(config, clock=clock) as bot:
        yield bot


async def cup(bot: SandboxClient) -> Reward:
    async with bot.db.read() as s:
        return (await s.execute(select(Reward).where(Reward.name == "保温杯"))).scalar_one()


def form(csrf: str, description: str = "304 不锈钢，保温 12 小时", picture: bytes | None = None,
         filename: str = "cup.png", content_type: str = "image/png", **extra: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("csrf", csrf)
    data.add_field("description", description)
    if picture is not None:
        data.add_field("picture", picture, filename=filename, content_type=content_type)
    for key, value in extra.items():
        data.add_field(key, value)
    return data


def stored(tmp_path: Path) -> list[str]:
    folder = tmp_path / "uploads" / "rewards"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_an_operator_sets_a_description_and_picture_that_members_see(console: SandboxClient,
                                                                           tmp_path: Path) -> None:
    reward = await cup(console)
    csrf = await console.sign_in("ops", "operator-password-1")
    assert f'href="/console/rewards/{reward.id}"' in await (await console.http.get("/console/rewards")).text()
    resp = await console.http.post(f"/console/rewards/{reward.id}", data=form(csrf, picture=PNG,
                                                                               filename="../../../etc/passwd.png"))
    assert resp.status == 200 and "已保存" in await resp.text()
    reward = await cup(console)
    assert reward.description == "304 不锈钢，保温 12 小时"
    assert reward.picture is not None and re.fullmatch(r"[0-9a-f]{32}\.png", reward.picture)
    assert stored(tmp_path) == [reward.picture]  # the server's name, not the one the browser sent
    async with console.db.read() as s:
        assert (await s.execute(select(AuditEntry.actor).where(AuditEntry.action == "reward.describe"))).scalar_one() \
            == "console:ops"
    mall = await console.open_member_center("u1", "/m/mall")
    assert "304 不锈钢，保温 12 小时" in mall
    src = re.search(r'<img class="thumb" src="([^"]+)"', mall)
    assert src is not None and src.group(1).startswith(f"/m/pictures/reward/{reward.id}?v=")
    picture = await console.http.get(src.group(1).replace("&amp;", "&"))
    assert picture.status == 200 and await picture.read() == PNG
    assert picture.headers["Content-Type"] == "image/png"
    assert "max-age" in picture.headers["Cache-Control"] and picture.headers["X-Content-Type-Options"] == "nosniff"
    again = await console.http.get(src.group(1), headers={"If-None-Match": picture.headers["ETag"]})
    assert again.status == 304


async def test_a_new_picture_replaces_the_old_file_and_removing_it_deletes_it(console: SandboxClient,
                                                                              tmp_path: Path) -> None:
    reward = await cup(console)
    csrf = await console.sign_in("ops", "operator-password-1")
    await console.http.post(f"/console/rewards/{reward.id}", data=form(csrf, picture=PNG))
    first = (await cup(console)).picture
    await console.http.post(f"/console/rewards/{reward.id}", data=form(csrf, picture=JPEG, filename="a.gif",
                                                                       content_type="image/gif"))
    second = (await cup(console)).picture
    assert second is not None and second.endswith(".jpg") and stored(tmp_path) == [second] and first != second
    await console.http.post(f"/console/rewards/{reward.id}", data=form(csrf, picture=WEBP))
    assert (await cup(console)).picture.endswith(".webp")  # type: ignore[union-attr]
    # Saving the description only keeps the picture; ticking "remove" deletes it.
    await console.http.post(f"/console/rewards/{reward.id}", data=form(csrf, "新介绍", picture=b"", filename=""))
    assert (await cup(console)).picture is not None and (await cup(console)).description == "新介绍"
    await console.http.post(f"/console/rewards/{reward.id}", data=form(csrf, "", remove_picture="1"))
    reward = await cup(console)
    assert reward.picture is None and reward.description is None and stored(tmp_path) == []
    assert (await console.http.get(f"/m/pictures/reward/{reward.id}")).status == 404


@pytest.mark.parametrize("content, why", [
    (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "只接受 JPEG、PNG 或 WebP"),
    (b"<html><script>alert(1)</script></html>", "只接受 JPEG、PNG 或 WebP"),
    (b"GIF89a" + bytes(100), "只接受 JPEG、PNG 或 WebP"),
    (PNG + bytes(20_000), "图片太大了"),
])
async def test_a_file_that_is_not_a_picture_we_keep_is_refused(console: SandboxClient, tmp_path: Path,
                                                               content: bytes, why: str) -> None:
    reward = await cup(console)
    csrf = await console.sign_in("ops", "operator-password-1")
    resp = await console.http.post(f"/console/rewards/{reward.id}", data=form(csrf, picture=content))
    assert resp.status == 400 and why in await resp.text()
    reward = await cup(console)
    assert reward.picture is None and reward.description is None and stored(tmp_path) == []


async def test_viewers_forged_forms_and_unknown_rewards_change_nothing(console: SandboxClient, tmp_path: Path) -> None:
    reward = await cup(console)
    csrf = await console.sign_in("look", "viewer-password-1")
    page = await (await console.http.get(f"/console/rewards/{reward.id}")).text()
    assert "只读" in page and 'type="file"' not in page
    assert (await console.http.post(f"/console/rewards/{reward.id}", data=form(csrf, picture=PNG))).status == 403
    csrf = await console.sign_in("ops", "operator-password-1")
    assert (await console.http.post(f"/console/rewards/{reward.id}", data=form("forged", picture=PNG))).status == 403
    assert (await console.http.post("/console/rewards/99999", data=form(csrf, picture=PNG))).status == 404
    too_long = await console.http.post(f"/console/rewards/{reward.id}", data=form(csrf, "长" * 501))
    assert too_long.status == 400
    # Files go only to the picture form.
    other = aiohttp.FormData()
    other.add_field("csrf", csrf)
    other.add_field("action", PNG, filename="x.png", content_type="image/png")
    assert (await console.http.post("/console/redemptions/1", data=other)).status == 400
    reward = await cup(console)
    assert reward.picture is None and reward.description is None and stored(tmp_path) == []
    async with console.db.read() as s:
        assert (await s.execute(select(func.count()).select_from(AuditEntry)
                                .where(AuditEntry.action == "reward.describe"))).scalar_one() == 0


async def test_a_picture_over_the_apps_1_mb_body_limit_but_within_the_upload_limit_is_taken(
        make_config: Callable[..., Config], clock: FakeClock, tmp_path: Path) -> None:
    """A phone photo of 2 MB is a normal picture: the reward form reads up to
    ``upload_max_bytes`` (the app's other bodies stop at 1 MB); a larger one is refused in Chinese."""
    config = make_config(console={"users": USERS, "secret": "s" * 32},
                         member_center={"upload_dir": str(tmp_path / "uploads"), "upload_max_bytes": 3_000_000})
    config = config.model_copy(update={"rewards": SiyuConfig.model_validate(
        {"rewards": [{"name": "保温杯", "cost": 100, "stock": 10}]}).rewards})
    async with sandbox_app(config, clock=clock) as bot:
        csrf = await bot.sign_in("ops", "operator-password-1")
        reward = await cup(bot)
        big = JPEG + bytes(2_000_000)
        resp = await bot.http.post(f"/console/rewards/{reward.id}", data=form(csrf, picture=big, filename="a.jpg",
                                                                              content_type="image/jpeg"))
        assert resp.status == 200, await resp.text()
        assert len(stored(tmp_path)) == 1
        resp = await bot.http.post(f"/console/rewards/{reward.id}", data=form(csrf, picture=JPEG + bytes(4_000_000),
                                                                              filename="b.jpg",
                                                                              content_type="image/jpeg"))
        assert resp.status == 413 and "图片太大了" in await resp.text()
