"""``bench/rush.py``'s WeCom callbacks and digest checks, and what they share with it."""
from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from sqlalchemy import create_engine, text

from bot.testing.fake_wecom import CallbackBuilder, text_message

TOKEN, AES_KEY, CORP, AGENT = "benchtoken", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww-bench-corp", 1000002
RATE_PER_MIN = 20.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def post(http: aiohttp.ClientSession, base: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{base}/sandbox/messages", json=body) as resp:
        if resp.status != 200:
            return {"error": resp.status, "replies": []}
        result: dict[str, Any] = await resp.json()
        return result


def sql_value(url: str, query: str) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar_one()
    finally:
        engine.dispose()


async def callbacks(base: str, url: str, rate: float, seconds: float) -> dict[str, Any]:
    builder = CallbackBuilder(TOKEN, AES_KEY, CORP, agent_id=AGENT)
    total = int(rate * seconds)
    pool = [builder.post(text_message(f"staff{i % 500}", f"你好 {i}", 50_000_000 + i, corp_id=CORP))
            for i in range(total)]
    oldest = ("SELECT min(received_at) FROM inbox WHERE channel = 'wecom' AND handled_at IS NULL")
    handled = "SELECT count(*) FROM inbox WHERE channel = 'wecom' AND handled_at IS NOT NULL"
    ages: list[float] = []
    stop = asyncio.Event()

    async def sample() -> None:
        from datetime import UTC, datetime
        while not stop.is_set():
            first = await asyncio.to_thread(sql_value, url, oldest)
            if isinstance(first, str):
                first = datetime.fromisoformat(first)
            if first is not None:
                ages.append((datetime.now(UTC) - first.replace(tzinfo=first.tzinfo or UTC)).total_seconds())
            else:
                ages.append(0.0)
            await asyncio.sleep(0.25)

    errors = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        async def one(path: str, body: bytes) -> None:
            nonlocal errors
            async with http.post(base + path, data=body, headers={"Content-Type": "text/xml"}) as resp:
                await resp.read()
                errors += resp.status != 200

        start_handled = await asyncio.to_thread(sql_value, url, handled)
        sampler = asyncio.create_task(sample())
        t0 = time.perf_counter()
        sent: set[asyncio.Task[None]] = set()
        for i, (path, body) in enumerate(pool):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(path, body))
            sent.add(task)
            task.add_done_callback(sent.discard)
        await asyncio.gather(*list(sent))
        window = time.perf_counter() - t0
        in_window = await asyncio.to_thread(sql_value, url, handled) - start_handled
        stop.set()
        await sampler
        while await asyncio.to_thread(sql_value, url, handled) - start_handled < total - errors:
            if time.perf_counter() - t0 > seconds + 60:
                break
            await asyncio.sleep(0.25)
        drained = time.perf_counter() - t0
    return {"offered": total / window, "handled": in_window / window, "max_age": max(ages, default=0.0),
            "p50_age": pct(ages, 0.5), "errors": errors, "drained": drained, "window": window}


async def digest(base: str, url: str, groups: int = 100, per_group: int = 50, spread_s: float = 60.0) -> str:
    bodies = [{"from": f"d{g}-{k}", "name": f"签{g}x{k}号", "chat": f"dg{g}", "text": "签到", "id": "d"}
              for k in range(per_group) for g in range(groups)]
    sent_at: dict[str, float] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
        t0 = time.time()
        tasks = []
        for i, body in enumerate(bodies):
            delay = t0 + i * spread_s / len(bodies) - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[body["name"]] = time.time()
            tasks.append(asyncio.create_task(post(http, base, body)))
        await asyncio.gather(*tasks)
    await asyncio.sleep(15)
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT chat, text, update_key, delivered_at FROM outbox "
                                 "WHERE chat LIKE 'dg%' AND delivered_at IS NOT NULL")).all()
    engine.dispose()
    from datetime import UTC, datetime

    def stamp(v: Any) -> float:
        v = datetime.fromisoformat(v) if isinstance(v, str) else v
        return float(v.replace(tzinfo=v.tzinfo or UTC).timestamp())

    delivered = sorted((stamp(r.delivered_at), r.chat, r.text, r.update_key or "") for r in rows)
    waits = []
    for body in bodies:
        key = f"sandbox:msg:{body['from']}:d"
        first = next((at for at, chat, t, k in delivered if chat == body["chat"] and (body["name"] in t or k == key)),
                     None)
        waits.append(first - sent_at[body["name"]] if first is not None else float("inf"))
    by_chat: dict[str, list[float]] = {}
    for at, chat, _, _ in delivered:
        by_chat.setdefault(chat, []).append(at)
    worst = max((sum(1 for b in ats if a <= b < a + 60) for ats in by_chat.values() for a in ats), default=0)
    late = sum(w > 10 for w in waits)
    return (f"{'OK' if late == 0 and worst <= RATE_PER_MIN else 'MISSED'}: {len(bodies)} sign-ins in {groups} groups "
            f"over {spread_s:.0f} s; acknowledged within 10 s: {len(bodies) - late}, later or not within 15 s of the "
            f"last: {late}; p50 wait {pct(waits, 0.5):.1f} s; most lines to one group in any 60 s: {worst} "
            f"(limit {RATE_PER_MIN:.0f}); group lines delivered {len(delivered)}")
