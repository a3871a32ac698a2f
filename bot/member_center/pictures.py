"""Reward pictures: uploaded by operators in the console, shown in the member center's mall.
A picture is checked by its content (JPEG, PNG or WebP by their first bytes, never by the name
or type a browser claims), kept under ``[member_center] upload_dir`` with a random name the
server makes, and served by the reward's id: no path a user chose reaches the disk."""
from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path

from bot.member_center.config import MemberCenterConfig

FOLDER = "rewards"
NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp)$")  # the only names ever written or read
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


class PictureRefused(ValueError):
    """Not a picture we keep; the message says why, in Chinese."""


def kind_of(data: bytes) -> str | None:
    """jpg, png or webp by the file's signature; None for anything else (an SVG, a script, a PDF)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def folder(config: MemberCenterConfig) -> Path:
    return Path(config.upload_dir) / FOLDER


def check(config: MemberCenterConfig, data: bytes) -> str:
    """The picture's kind, or ``PictureRefused`` (empty, too large, not JPEG/PNG/WebP)."""
    if not data:
        raise PictureRefused("图片是空的")
    if len(data) > config.upload_max_bytes:
        raise PictureRefused(f"图片太大了，最大 {config.upload_max_bytes // 1024} KB")
    kind = kind_of(data)
    if kind is None:
        raise PictureRefused("只接受 JPEG、PNG 或 WebP 图片")
    return kind


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    partial.write_bytes(data)
    os.replace(partial, target)  # whole or not at all: a reader never sees half a picture


async def save(config: MemberCenterConfig, data: bytes) -> str:
    """Keep a checked picture; its new name (random, made here) is what the reward stores."""
    name = f"{secrets.token_hex(16)}.{check(config, data)}"
    await asyncio.to_thread(_write, folder(config) / name, data)
    return name


def path_of(config: MemberCenterConfig, name: str | None) -> Path | None:
    """The file of a stored name, if it is one of ours and still there."""
    if not name or not NAME.match(name):
        return None
    path = folder(config) / name
    return path if path.is_file() else None


async def remove(config: MemberCenterConfig, name: str | None) -> None:
    """Delete a picture no reward shows any more (a missing one is fine)."""
    path = path_of(config, name)
    if path is not None:
        await asyncio.to_thread(path.unlink, True)


def content_type(name: str) -> str:
    return CONTENT_TYPES[name.rsplit(".", 1)[1]]
