"""Photos members upload as a task's proof: taken only as JPEG, PNG or WebP by their first bytes
(never by the name or type the browser claims), kept under ``[member_center] upload_dir`` with
a name the server makes, and served only by a check-in's number to those allowed to see it.
Nothing a member sends becomes part of a path."""
from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path

from aiohttp import web

from bot.member_center.config import MemberCenterConfig

# (first bytes, extension): the containers a phone's camera or screenshot produces.
SIGNATURES = ((b"\xff\xd8\xff", "jpg"), (b"\x89PNG\r\n\x1a\n", "png"))
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
# What a stored name looks like: 32 random hex digits and an extension, nothing else.
STORED_NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp)$")


def sniff(data: bytes) -> str | None:
    """The picture's extension from its content, or None if it is not a JPEG, PNG or WebP."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in SIGNATURES if data.startswith(magic)), None)


def _write(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{name}.part"
    with open(partial, "xb") as out:  # "x": never over another file
        out.write(data)
    os.replace(partial, folder / name)  # whole or absent: a reader never sees half a photo


async def store(config: MemberCenterConfig, data: bytes, ext: str) -> str:
    """Keep the picture under a new random name; returns that name (what a check-in records)."""
    name = f"{secrets.token_hex(16)}.{ext}"
    await asyncio.to_thread(_write, Path(config.upload_dir), name, data)
    return name


async def remove(config: MemberCenterConfig, name: str) -> None:
    """A stored photo no check-in kept (the check-in was refused): gone."""
    if STORED_NAME.match(name):
        await asyncio.to_thread((Path(config.upload_dir) / name).unlink, True)


def stored_before(config: MemberCenterConfig, before: float) -> list[str]:
    """The stored photos (by name) last written before ``before`` (a Unix time); blocking."""
    folder = Path(config.upload_dir)
    if not folder.is_dir():
        return []
    return [entry.name for entry in os.scandir(folder)
            if STORED_NAME.match(entry.name) and entry.is_file() and entry.stat().st_mtime < before]


def response(config: MemberCenterConfig, name: str | None) -> web.StreamResponse:
    """The stored photo ``name`` (from a check-in row, never from a request) as an image that a
    browser shows and never runs; 404 if there is none."""
    if not name or (match := STORED_NAME.match(name)) is None:
        raise web.HTTPNotFound(reason="没有这张图片")
    path = Path(config.upload_dir) / name
    if not path.is_file():
        raise web.HTTPNotFound(reason="没有这张图片")
    photo = web.FileResponse(path, headers={
        "Content-Type": CONTENT_TYPES[match.group(1)], "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, max-age=3600", "Content-Security-Policy": "default-src 'none'; sandbox"})
    return photo
