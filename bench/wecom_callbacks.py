"""WeCom callbacks: encrypted text callbacks per second and answer latency, siyu against a floor.

    python bench/wecom_callbacks.py [--count 3000] [--database-url postgresql+psycopg://...]

For each concurrency (1, 16, 64), without and with every callback sent three times (WeCom's
retries), it starts a fresh ``siyu run`` (SQLite, or the PostgreSQL URL given, whose public
schema it wipes) with the WeCom channel pointed at a fake WeCom server, and posts pre-encrypted
text callbacks. siyu stores each before answering and handles it after (replies go to the
fake's message/send). The floor is a bare aiohttp server that only verifies, decrypts and parses
the same callbacks with wechatpy: what any aiohttp + wechatpy framework must at least do.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _spawn import fresh_database  # noqa: E402
from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, text_message  # noqa: E402

TOKEN, AES_KEY, CORP = "benchtoken", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww-bench-corp"


def floor_server(port: int) -> None:
    """The floor: verify + decrypt + parse with wechatpy, answer 200. Nothing stored."""
    from aiohttp import web
    from wechatpy.work import parse_message
    from wechatpy.work.crypto import WeChatCrypto

    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP)

    async def callback(request: web.Request) -> web.Response:
        q = request.query
        xml = crypto.decrypt_message(await request.read(), q["msg_signature"], q["timestamp"], q["nonce"])
        parse_message(xml)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/wecom/callback", callback)
    app.router.add_get("/healthz", lambda r: web.json_response({"status": "ok"}))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def start(kind: str, port: int, fake_url: str, database_url: str | None) -> subprocess.Popen[bytes]:
    if kind == "floor":
        return subprocess.Popen([sys.executable, __file__, "--floor-server", str(port)])
    workdir, url = fresh_database(database_url)
    (workdir / "config.toml").write_text(
        f'[storage]\nurl = "{url}"\n[logging]\nlevel = "WARNING"\n[sandbox]\nenabled = false\n'
        f'[server]\npublic_url = "http://127.0.0.1:{port}"\n'  # the member center's WeCom sign-in returns there
        f'[wecom]\nenabled = true\ncorp_id = "{CORP}"\nagent_id = 1000002\nsecret = "bench-secret"\n'
        f'token = "{TOKEN}"\nencoding_aes_key = "{AES_KEY}"\napi_base_url = "{fake_url}"\n'
    )
    env = {**os.environ, "SIYU_CONFIG": str(workdir / "config.toml")}
    return subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL)


async def wait_ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(base + "/wecom/callback") as resp:  # 400 (no params) = serving
                    if resp.status in (200, 400, 405):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{base} did not start")


async def drive(base: str, requests: list[tuple[str, bytes]], concurrency: int) -> dict[str, float]:
    queue = list(reversed(requests))
    latencies: list[float] = []
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while queue:
            path, body = queue.pop()
            t0 = time.perf_counter()
            async with session.post(base + path, data=body, headers={"Content-Type": "text/xml"}) as resp:
                await resp.read()
                errors += resp.status != 200
            latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {"rate": len(latencies) / elapsed, "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, "errors": errors}


async def main(count: int, database_url: str | None) -> None:
    builder = CallbackBuilder(TOKEN, AES_KEY, CORP, agent_id=1000002)
    msg_ids = iter(range(10_000_000, 99_000_000))
    port = 18090
    print(f"{count} callbacks per run; siyu on {'PostgreSQL' if database_url else 'SQLite'}")
    print(f"{'server':6} {'dups':>4} {'conc':>4} {'callbacks/s':>11} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6}")
    async with FakeWeCom(corp_id=CORP, secret="bench-secret") as fake:
        for dups in (1, 3):
            for concurrency in (1, 16, 64):
                n = count if concurrency > 1 else max(300, count // 10)
                unique = [builder.post(text_message(f"staff{i % 200}", "你好", next(msg_ids), corp_id=CORP))
                          for i in range(n // dups)]
                requests = [r for r in unique for _ in range(dups)]
                results = {}
                for kind in ("floor", "siyu"):
                    port += 1
                    proc = start(kind, port, fake.base_url, database_url)
                    try:
                        await wait_ready(f"http://127.0.0.1:{port}")
                        results[kind] = await drive(f"http://127.0.0.1:{port}", requests, concurrency)
                    finally:
                        proc.terminate()
                        proc.wait(timeout=15)
                for kind in ("floor", "siyu"):
                    r = results[kind]
                    ratio = f"{r['rate'] / results['floor']['rate']:.2f}" if kind == "siyu" else ""
                    print(f"{kind:6} {dups:>4} {concurrency:>4} {r['rate']:>11.0f} {r['p50']:>7.1f} {r['p99']:>7.1f} "
                          f"{ratio:>6}" + (f"  errors={r['errors']}" if r["errors"] else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="callbacks per run at concurrency 16 and 64")
    parser.add_argument("--database-url", help="PostgreSQL URL for siyu (its public schema is wiped)")
    parser.add_argument("--floor-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        floor_server(args.floor_server)
    else:
        asyncio.run(main(args.count, args.database_url))
