"""The console's pages on a big community: the overview and the groups page must render in under
500 ms each with 1,000,000 members, 10,000 groups and 30 days of activity.

    python bench/console_data.py          # once: fills postgresql+psycopg://postgres@localhost/siyu_bench
    python bench/console.py [--runs 20]

Starts the real app (``bot.app.create_app``) in this process on a free local port, signs in to
the console as an admin (the sign-in form's CSRF token, then the session cookie), then requests
each page ``--runs`` times one after the other, after 2 warm-up requests, and prints the p50,
p95 and max of the time to the last byte of the body. Client and server share the machine.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import statistics
import sys
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_MS = 500.0
PAGES = [
    ("overview (default range)", "/console"),
    ("groups (default sort)", "/console/groups"),
    ("groups by members, desc, page 10", "/console/groups?sort=members&desc=1&page=10"),
]
USER, PASSWORD = "bench", "bench-password-123"
CSRF = re.compile(r'<input type="hidden" name="csrf" value="([^"]+)"')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def sign_in(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(f"{base}/console/login") as resp:
        body = await resp.text()
        if resp.status != 200:
            raise SystemExit(f"GET /console/login: {resp.status} (is the console there yet?)")
    found = CSRF.search(body)
    if found is None:
        raise SystemExit("no CSRF token in the sign-in form")
    form = {"name": USER, "password": PASSWORD, "csrf": found.group(1), "next": "/console"}
    async with session.post(f"{base}/console/login", data=form, allow_redirects=False) as resp:
        await resp.read()
        if resp.status != 302 or resp.headers.get("Location") != "/console":
            raise SystemExit(f"sign-in refused: {resp.status} {resp.headers.get('Location')}")
    if not any(c.key == "siyu_console" for c in session.cookie_jar):
        raise SystemExit("signed in, but no session cookie")


async def timed_get(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    async with session.get(url, allow_redirects=False) as resp:
        body = await resp.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            raise SystemExit(f"GET {url}: {resp.status}\n{body[:500].decode(errors='replace')}")
    return elapsed, len(body)


async def bench(url: str, runs: int, warmup: int) -> bool:
    from bot.app import create_app
    from bot.builtin import config_from_dict

    config = config_from_dict({
        "storage": {"url": url},
        "console": {"users": [{"name": USER, "password": PASSWORD, "role": "admin"}], "secret": "x" * 32},
        "scheduler": {"enabled": False},  # no playbooks here; keep its leader election out of the figures
        "logging": {"level": "WARNING"},
    })
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    print(f"siyu on {base}, database {url}; {runs} runs per page after {warmup} warm-up(s); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = True
    try:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            await sign_in(session, base)
            print(f"{'page':<34} {'bytes':>9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  under {TARGET_MS:.0f} ms")
            for label, path in PAGES:
                for _ in range(warmup):
                    await timed_get(session, base + path)
                times, size = [], 0
                for _ in range(runs):
                    elapsed, size = await timed_get(session, base + path)
                    times.append(elapsed)
                p50, p95, worst = statistics.median(times), percentile(times, 0.95), max(times)
                under = p95 < TARGET_MS
                ok &= under
                print(f"{label:<34} {size:>9,} {p50:>8.1f} {p95:>8.1f} {worst:>8.1f}  "
                      f"{'yes' if under else 'NO'}{'' if worst < TARGET_MS else ' (max over)'}")
    finally:
        await runner.cleanup()
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="postgresql+psycopg://postgres@localhost/siyu_bench",
                    help="a database filled by bench/console_data.py (migrated to head at start, not wiped)")
    ap.add_argument("--runs", type=int, default=20, help="timed requests per page")
    ap.add_argument("--warmup", type=int, default=2, help="untimed requests per page first")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    ok = asyncio.run(bench(args.url, args.runs, args.warmup))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
