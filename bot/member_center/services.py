"""What other surfaces use of the member center: the photo a member uploaded with a check-in
(the console's 打卡审核 shows it to operators)."""
from __future__ import annotations

from aiohttp import web

import bot.member_center.uploads as uploads
from bot.config import Config
from bot.member_center.config import MEMBER_CENTER

__all__ = ["photo_response"]


def photo_response(config: Config, stored: str | None) -> web.StreamResponse:
    """The check-in's stored photo (``TaskCheckin.photo``, a name the server made), or a 404."""
    return uploads.response(config[MEMBER_CENTER], stored)
