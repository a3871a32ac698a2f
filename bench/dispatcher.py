"""The dispatcher alone: chat, 签到 and 打卡 fed straight to ``Dispatcher.feed`` (no HTTP, no
load generator in another process), so a change to the pipeline or the storage is measured with
less of the machine's noise than ``rush.py``. Prints msgs/s, CPU a message (this process, all
threads) and the statements a batch ran.

    python bench/dispatcher.py [--database-url postgresql+psycopg://...] [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event  # noqa: E402

from bot.builtin import config_from_dict  # noqa: E402
from bot.testing import sandbox_app  # noqa: E402
from bot.update import Update  # noqa: E402

TEXTS = {"chat": "消息", "签到": "签到", "打卡": "打卡 分享"}


async def run(url: str, members: int, groups: int, concurrency: int) -> list[str]:
    config = config_from_dict({
        "storage": {"url": url}, "logging": {"level": "WARNING"}, "sandbox": {"enabled": True},
        "signin": {"daily_points": 1000}, "levels": {"tiers": [{"name": "会员", "min_points": 0}]},
        "tasks": [{"name": "分享", "points": 10}]})
    out = []
    async with sandbox_app(config) as bot:
        dispatcher = bot.dispatcher
        statements = [0]

        def count(*_: object) -> None:
            statements[0] += 1

        event.listen(bot.db.engine.sync_engine, "after_cursor_execute", count)

        async def phase(text: str, tag: str) -> tuple[float, float, int]:
            queue = list(range(members))[::-1]

            async def worker() -> None:
                while queue:
                    u = queue.pop()
                    await dispatcher.feed(Update(channel="sandbox", key=f"{tag}-{u}", sender=f"m{u}",
                                                 at=dispatcher.clock.now(), chat=f"g{u % groups}", text=text,
                                                 sender_name=f"成员m{u}"))

            statements[0] = 0
            t0, c0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return members / (time.perf_counter() - t0), (time.process_time() - c0) / members * 1e3, statements[0]

        await phase("大家好", "warm")
        for label, text in TEXTS.items():
            rate, cpu, n = await phase(text, label)
            out.append(f"{label:6} {rate:7.0f} msgs/s  {cpu:.3f} ms CPU a message  "
                       f"{n / members:.2f} statements a message")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=os.environ.get("SIYU_BENCH_DATABASE_URL"),
                   help="PostgreSQL URL (its public schema is wiped); default SQLite in a scratch folder")
    p.add_argument("--members", type=int, default=2000)
    p.add_argument("--groups", type=int, default=100)
    p.add_argument("-c", "--concurrency", type=int, default=32)
    p.add_argument("--rounds", type=int, default=2, help="fresh databases, one after another")
    args = p.parse_args()
    for r in range(args.rounds):
        if args.database_url:
            from _spawn import fresh_database
            _, url = fresh_database(args.database_url)
        else:
            url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='siyu-bench-')) / 'bench.db'}"
        print(f"== round {r + 1}, {'PostgreSQL' if args.database_url else 'SQLite'}")
        for line in asyncio.run(run(url, args.members, args.groups, args.concurrency)):
            print(line)


if __name__ == "__main__":
    main()
