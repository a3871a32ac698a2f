"""Make a transcript by driving the sandbox as a member would: starts ``siyu run`` (the
checkout on ``PYTHONPATH``) with ``sandbox.toml`` beside this file on a fresh SQLite database,
sends the conversation through ``POST /sandbox/messages`` and ``/sandbox/events``, and writes
what the member saw.

    PYTHONPATH=. python docs/screenshots/drive.py help docs/screenshots/member-help-after.txt
    PYTHONPATH=. python docs/screenshots/drive.py redemption docs/screenshots/redemption-flow-after.txt
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class Sandbox:
    def __init__(self, base: str) -> None:
        self.base = base
        self.lines: list[str] = []

    def post(self, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request) as resp:
            return list(json.load(resp)["replies"])

    def show(self, title: str, replies: list[dict[str, Any]]) -> None:
        self.lines.append(title)
        self.lines += ["  品牌助手：" + r["text"].replace("\n", "\n            ") for r in replies]
        self.lines.append("")

    def say(self, user: str, text: str, chat: str | None = None) -> None:
        replies = self.post("/sandbox/messages", {"from": user, "chat": chat, "text": text, "name": "小王"})
        self.show(f"[{'群 ' + chat if chat else '一对一'}] {user}：{text}", replies)

    def event(self, kind: str, user: str, chat: str | None = None) -> None:
        body = {"type": kind, "user": user, "name": "小王", **({"chat": chat} if chat else {})}
        self.show(f"[事件 {kind}{' 群 ' + chat if chat else ''}] {user}", self.post("/sandbox/events", body))

    def note(self, text: str) -> None:
        self.lines += [text, ""]


def member_help(s: Sandbox) -> None:
    s.event("member_joined", "u1", "g1")
    s.say("u1", "/help", chat="g1")
    s.say("u1", "/help")
    s.say("u1", "帮助")
    s.say("u1", "菜单", chat="g1")
    s.say("u1", "你们有什么活动吗")
    s.say("u1", "/help broadcast")
    s.say("u1", "/broadcast")
    s.say("u1", "/koc pending")


def redemption(s: Sandbox) -> None:
    s.say("u1", "积分")
    s.post("/sandbox/messages", {"from": "boss", "chat": None, "text": "/points grant u1 200 测试积分"})
    s.note("（运营 boss 发放了 200 积分：/points grant u1 200 测试积分）")
    s.say("u1", "兑换")
    s.say("u1", "兑换 3")  # 品牌保温杯 needs 300: certain to fail
    s.say("u1", "确认")
    s.say("u1", "兑换 4")
    s.say("u1", "确认")
    s.say("u1", "兑换 4")  # 限量徽章: one per member, already redeemed
    s.say("u1", "兑换 1")
    s.say("u1", "兑换 9")
    s.say("u1", "兑换 1")
    s.say("u1", "积分")
    s.say("u1", "兑换 1")
    s.say("u1", "兑换 2")  # another choice
    s.say("u1", "打卡")
    s.say("u1", "兑换 2")
    s.say("u1", "好的")
    s.say("u1", "确认")


def main(what: str, out: str) -> None:
    conversation = {"help": member_help, "redemption": redemption}[what]
    with tempfile.TemporaryDirectory() as folder, socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        config = Path(folder) / "config.toml"
        config.write_text(f'[storage]\nurl = "sqlite:///{folder}/siyu.db"\n\n'
                          + (HERE / "sandbox.toml").read_text(encoding="utf-8"), encoding="utf-8")
        siyu = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config), "--port", str(port)],
                                cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(150):
                try:
                    urllib.request.urlopen(base + "/healthz").close()
                    break
                except OSError:
                    time.sleep(0.2)
            sandbox = Sandbox(base)
            conversation(sandbox)
        finally:
            siyu.terminate()
            siyu.wait(10)
    Path(out).write_text("\n".join(sandbox.lines).rstrip() + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
