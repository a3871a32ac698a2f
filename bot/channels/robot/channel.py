"""The ``robot`` channel: a WeCom group robot (群机器人) posting text and markdown into one
internal group, the operators' (wecom.md §3.9). It hears nothing and reaches nobody else:
daily reports and alerts (a fan-out with failures, KOC applications waiting) go there.

Limits: at most 20 messages a minute per robot (paced here at one every 3.2 s, so no
minute ever sees more), text ≤ 2,048 bytes and markdown ≤ 4,096 (cut with a mark). 45009 (the
rate limit) is retried after 60 s; 93000 (the key is invalid or revoked) is not retried.
"""
from __future__ import annotations

import logging
from typing import Any

import aiohttp
from aiohttp import web

from bot.channels.base import Capability, Channel, DeliveryError, cap_bytes
from bot.channels.robot.config import RobotConfig
from storage.outbox import Claimed

log = logging.getLogger("siyu.robot")
NAME = "robot"
TEXT_BYTES, MARKDOWN_BYTES = 2048, 4096
KEY_INVALID, RATE_LIMITED = 93000, 45009


class RobotChannel(Channel):
    name = NAME
    capabilities = frozenset({Capability.SEND_GROUP})
    # 20 a minute is WeCom's limit per robot; one every 3.2 s keeps every minute under it.
    rate_per_s = 1 / 3.2

    def __init__(self, config: RobotConfig) -> None:
        self.config = config
        self._http: aiohttp.ClientSession | None = None

    async def start(self, app: web.Application) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, message: Claimed) -> None:
        if message.chat != self.config.chat:
            raise DeliveryError(f"the robot posts only into {self.config.chat!r}, not {message.chat or message.to!r}",
                                retryable=False)
        if message.meta.get("markdown"):
            payload: dict[str, Any] = {"msgtype": "markdown",
                                       "markdown": {"content": cap_bytes(message.text, MARKDOWN_BYTES)}}
        else:
            payload = {"msgtype": "text", "text": {"content": cap_bytes(message.text, TEXT_BYTES)}}
        assert self._http is not None
        url = self.config.api_base_url.rstrip("/") + "/webhook/send"
        try:
            async with self._http.post(url, params={"key": self.config.key}, json=payload) as resp:
                answer = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise DeliveryError(f"robot webhook unreachable: {type(exc).__name__}") from None
        code = int(answer.get("errcode", -1)) if isinstance(answer, dict) else -1
        if code == 0:
            return
        reason = f"robot webhook: {code} {answer.get('errmsg', '') if isinstance(answer, dict) else ''}".strip()
        if code == KEY_INVALID:
            log.error("the group robot's key is invalid or revoked (93000): recreate the robot and set [robot] key")
            raise DeliveryError(reason, retryable=False)
        if code == RATE_LIMITED:
            raise DeliveryError(reason, retry_after=60.0)
        raise DeliveryError(reason, retryable=code == -1)
