"""Rush hour (issue 20): chat, sign-ins, check-ins, a redemption rush and WeCom callbacks, per database.

    python bench/rush.py [--database-url postgresql+psycopg://...]   # that database is WIPED
    SIYU_BENCH_DATABASE_URL=postgresql+psycopg://... python bench/rush.py

For SQLite, and for PostgreSQL when a URL is given (flag or environment), it starts a fresh
``siyu run`` with the sandbox on and WeCom pointed at a fake WeCom server in this process, and:

1. ``--members`` (2,000) members in ``--groups`` (100) groups each write once (warm-up), then at
   concurrency ``-c`` (32): plain group chat (2 lines each), group 签到 (once each), task 打卡
   (once each), and member-center check-in (``POST /m/checkin`` by 2,000 more members signed in
   with the sandbox's ``/m/?as=``, only if the route exists):
   msgs/s, p50 and p99 of the answer;
2. the redemption rush: 1,000 of them pick one 100-unit reward (兑换 1), then all send 确认 at
   once: wall time, how many were served and told it is gone, and the ledger check (every
   balance equals its entries, exactly one spend per served member and none for the others,
   the reward's units add up);
3. WeCom text callbacks (internal members, the fallback answer) offered at ``--callback-rate``
   (600/s) for 20 s: callbacks handled per second in that window, and the oldest unhandled
   callback's age (sampled every 0.25 s from ``inbox``);
4. the digest check (``--digest``, about 80 s more), on a fresh server: 100 groups × 50 members
   each sign in, spread evenly over one minute; every member must see their acknowledgement delivered
   in the group within 10 s (a group line naming them, or the reply to their message), and no
   group may get more than ``[outbox] group_rate_per_min`` lines in any 60 s.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _rush_checks import AES_KEY, AGENT, CORP, RATE_PER_MIN, TOKEN, callbacks, digest, pct, post  # noqa: E402
from _spawn import fresh_database, wait_ready  # noqa: E402
from bot.testing.fake_wecom import FakeWeCom  # noqa: E402

RUSH, UNITS = 1000, 100
CONFIG = """[logging]
level = "WARNING"
[sandbox]
enabled = true
[signin]
daily_points = 1000
[levels]  # one tier: no level-ups in the figures
tiers = [{{ name = "会员", min_points = 0 }}]
[outbox]
group_rate_per_min = {rate}
[[tasks]]
name = "分享"
points = 10
[[rewards]]
name = "爆款空气炸锅"
cost = 500
stock = {units}
[wecom]
enabled = true
corp_id = "{corp}"
agent_id = {agent}
secret = "bench-secret"
token = "{token}"
encoding_aes_key = "{aes}"
api_base_url = "{fake}"
replay_window_s = 0
sync_every_h = 0
"""


def spawn(database_url: str | None, port: int, fake_url: str) -> tuple[subprocess.Popen[bytes], str]:
    import importlib.util

    workdir, url = fresh_database(database_url)
    config = CONFIG.format(rate=RATE_PER_MIN, units=UNITS, corp=CORP, agent=AGENT, token=TOKEN, aes=AES_KEY,
                           fake=fake_url)
    if importlib.util.find_spec("bot.member_center") is not None:  # the builds that have it
        # Every member center request here comes from one address: lift its per-address limit.
        config += (f'[member_center]\npages_per_min_per_address = 1000000\n'
                   f'[server]\npublic_url = "http://127.0.0.1:{port}"\n')
    (workdir / "config.toml").write_text(config, encoding="utf-8")
    env = {**os.environ, "SIYU_STORAGE_URL": url, "SIYU_CONFIG": str(workdir / "config.toml")}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL)
    return proc, url.replace("sqlite+aiosqlite", "sqlite")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (siyu finishes what it holds), then SIGKILL after 30 s (a backlog it was handling)."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def phase(base: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """Post ``bodies`` at ``concurrency``: rate, p50/p99 (ms), errors, and the answers in order."""
    queue = list(enumerate(bodies))[::-1]
    answers: list[dict[str, Any]] = [{}] * len(bodies)
    latencies: list[float] = []
    # This process's own full garbage collections (~100 ms: it holds the fake WeCom, the bodies
    # and every answer) would count as the server's latency: what exists now is left out of them.
    gc.collect()
    gc.freeze()

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            i, body = queue.pop()
            t0 = time.perf_counter()
            answers[i] = await post(http, base, body)
            latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"rate": len(bodies) / wall, "p50": pct(latencies, 0.5) * 1000, "p99": pct(latencies, 0.99) * 1000,
            "errors": sum("error" in a for a in answers), "wall": wall, "answers": answers}


def member(u: int, groups: int, text_: str, tag: str, who: str = "m") -> dict[str, Any]:
    return {"from": f"{who}{u}", "name": f"成员{who}{u}", "chat": f"g{u % groups}", "text": text_, "id": f"{tag}-{u}"}


async def member_center(base: str, n: int, groups: int, concurrency: int) -> dict[str, Any] | None:
    """``POST /m/checkin`` by ``n`` new members, each signed in to the member center first (the
    sandbox's ``/m/?as=``, not timed): rate, p50/p99 of the answer (a redirect to the page).
    None if this build has no such route."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.post(f"{base}/m/checkin", allow_redirects=False) as resp:
            if resp.status == 404:
                return None
    await phase(base, [member(u, groups, "大家好", "warm", who="c") for u in range(n)], concurrency)
    sessions: list[tuple[str, str]] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def sign_in(u: int) -> tuple[str, str]:
            async with http.get(f"{base}/m/", params={"as": f"c{u}"}, allow_redirects=False) as resp:
                cookie = "; ".join(f"{k}={v.value}" for k, v in resp.cookies.items())
                where = resp.headers.get("Location", "/m/") if resp.status in (302, 303) else None
                page = await resp.text()
            if where is not None:
                async with http.get(base + where if where.startswith("/") else where,
                                    headers={"Cookie": cookie}, allow_redirects=False) as resp:
                    page = await resp.text()
            found = re.search(r'name="csrf" value="([^"]+)"', page)
            return cookie, found.group(1) if found else ""

        sessions = list(await asyncio.gather(*(sign_in(u) for u in range(n))))
        queue = list(reversed(sessions))
        latencies: list[float] = []
        errors = 0

        async def worker() -> None:
            nonlocal errors
            while queue:
                cookie, csrf = queue.pop()
                t0 = time.perf_counter()
                async with http.post(f"{base}/m/checkin", data={"csrf": csrf}, headers={"Cookie": cookie},
                                     allow_redirects=False) as resp:
                    await resp.read()
                    errors += resp.status not in (200, 303)
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"rate": n / wall, "p50": pct(latencies, 0.5) * 1000, "p99": pct(latencies, 0.99) * 1000,
            "errors": errors, "answers": sessions}


async def rush(base: str, concurrency: int, pid: int) -> dict[str, Any]:
    picks = [{"from": f"m{u}", "text": "兑换 1", "id": f"pick-{u}"} for u in range(RUSH)]
    await phase(base, picks, concurrency)
    confirms = [{"from": f"m{u}", "text": "确认", "id": f"confirm-{u}"} for u in range(RUSH)]
    await asyncio.sleep(1)  # the prompts' deliveries done: the rush's CPU is the rush's
    cpu = cpu_s(pid)
    r = await phase(base, confirms, concurrency)
    r["cpu"] = cpu_s(pid) - cpu
    texts = [(a["replies"] or [{"text": ""}])[0]["text"] for a in r["answers"]]
    return {**r, "served": sum("兑换成功" in t for t in texts), "gone": sum("兑完" in t for t in texts),
            "other": sum("兑换成功" not in t and "兑完" not in t for t in texts),
            "winners": {f"m{u}" for u, t in enumerate(texts) if "兑换成功" in t}}


def ledger_check(url: str, winners: set[str]) -> str:
    engine = create_engine(url)
    with engine.connect() as conn:
        units = conn.execute(text("SELECT stock, reserved, fulfilled FROM rewards")).one()
        unbalanced = conn.execute(text(
            "SELECT count(*) FROM point_balances b WHERE b.balance + b.pending <> "
            "(SELECT coalesce(sum(delta), 0) FROM point_entries e WHERE e.member_id = b.member_id)")).scalar_one()
        spends = conn.execute(text(
            "SELECT m.external_id, count(*) FROM point_entries e JOIN members m ON m.id = e.member_id "
            "WHERE e.kind = 'spend' GROUP BY m.external_id")).all()
        held = conn.execute(text("SELECT count(*) FROM redemptions WHERE status <> 'cancelled'")).scalar_one()
    engine.dispose()
    charged = {who: n for who, n in spends}
    twice = sum(n > 1 for n in charged.values())
    wrong = len(set(charged) ^ winners)
    ok = unbalanced == 0 and twice == 0 and wrong == 0 and sum(units) == UNITS and held == len(winners)
    return (f"{'OK' if ok else 'INCONSISTENT'}: units {units[0]}+{units[1]}+{units[2]}={sum(units)}, "
            f"redemptions held {held}, ledgers out of balance {unbalanced}, charged twice {twice}, "
            f"charged but not served (or served, not charged) {wrong}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux): less swayed by a busy
    machine than wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(database_url: str | None, args: argparse.Namespace, port: int) -> list[str]:
    name = "PostgreSQL" if database_url else "SQLite"
    out = [f"== {name} (load {load()} at start)"]
    phases = set(args.phases.split(","))
    async with FakeWeCom(corp_id=CORP, secret="bench-secret") as fake:
        if phases & {"paths", "rush", "callbacks"}:
            proc, url = spawn(database_url, port, fake.base_url)
            base = f"http://127.0.0.1:{port}"
            try:
                await wait_ready(base)
                out += await main_phases(base, url, args, phases, proc.pid)
            finally:
                stop(proc)
        if "digest" in phases:  # on a fresh server: the phases above leave thousands of group lines queued
            proc, url = spawn(database_url, port, fake.base_url)
            base = f"http://127.0.0.1:{port}"
            try:
                await wait_ready(base)
                out.append("digest: " + await digest(base, url))
            finally:
                stop(proc)
    out.append(f"(load {load()} at end)")
    return out


async def main_phases(base: str, url: str, args: argparse.Namespace, phases: set[str], pid: int) -> list[str]:
    out = []
    n, g, c = args.members, args.groups, args.concurrency
    if phases & {"paths", "rush"}:
        await phase(base, [member(u, g, "大家好", "warm") for u in range(n)], c)
        rows = {"group chat": await phase(base, [member(u, g, f"消息 {i}", f"chat{i}")
                                                 for i in range(2) for u in range(n)], c),
                "group 签到": await phase(base, [member(u, g, "签到", "signin") for u in range(n)], c)}
        if "paths" in phases:
            rows["task 打卡"] = await phase(base, [member(u, g, "打卡 分享", "task") for u in range(n)], c)
            center = await member_center(base, n, g, c)
            if center is not None:
                rows["member center 签到"] = center
            chat_rate = rows["group chat"]["rate"]
            out.append(f"{'path':16} {'msgs':>5} {'msgs/s':>7} {'×chat':>6} {'p50 ms':>7} {'p99 ms':>7} errors")
            for label, r in rows.items():
                out.append(f"{label:16} {len(r['answers']):>5} {r['rate']:>7.0f} {r['rate'] / chat_rate:>6.2f} "
                           f"{r['p50']:>7.1f} {r['p99']:>7.1f} {r['errors']}")
            if center is None:
                out.append("member-center check-in: skipped, POST /m/checkin is not a route of this build")
    if "rush" in phases:
        r = await rush(base, c, pid)
        out.append(f"rush: {RUSH} members confirm one {UNITS}-unit reward at c={c}: {r['wall']:.2f} s wall "
                   f"(server CPU {r['cpu']:.2f} s), p99 {r['p99']:.0f} ms; served {r['served']}, "
                   f"told it is gone {r['gone']}, other {r['other']}")
        out.append("  ledger: " + await asyncio.to_thread(ledger_check, url, r["winners"]))
    if "callbacks" in phases:
        w = await callbacks(base, url, args.callback_rate, args.callback_seconds)
        out.append(f"WeCom callbacks offered {w['offered']:.0f}/s for {w['window']:.1f} s: handled "
                   f"{w['handled']:.0f}/s in that window; oldest unhandled max {w['max_age']:.2f} s, "
                   f"p50 {w['p50_age']:.2f} s; all handled after {w['drained']:.1f} s; errors {w['errors']}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=os.environ.get("SIYU_BENCH_DATABASE_URL"),
                   help="PostgreSQL URL (its public schema is wiped); or SIYU_BENCH_DATABASE_URL")
    p.add_argument("--members", type=int, default=2000)
    p.add_argument("--groups", type=int, default=100)
    p.add_argument("-c", "--concurrency", type=int, default=32)
    p.add_argument("--callback-rate", type=float, default=600.0)
    p.add_argument("--callback-seconds", type=float, default=20.0)
    p.add_argument("--digest", action="store_true", help="also the 100 groups × 50 sign-ins check (~80 s more)")
    p.add_argument("--phases", default="paths,rush,callbacks",
                   help="comma-separated: paths, rush (it needs the sign-ins' points), callbacks, digest")
    p.add_argument("--only", choices=("sqlite", "postgresql"), help="run one database only")
    p.add_argument("--port", type=int, default=18400)
    args = p.parse_args()
    if args.digest:
        args.phases += ",digest"
    if args.members < RUSH:
        raise SystemExit(f"--members must be at least {RUSH} (the rush)")
    targets: list[str | None] = []
    if args.only != "postgresql":
        targets.append(None)
    if args.database_url and args.only != "sqlite":
        targets.append(args.database_url)
    for i, target in enumerate(targets):
        print("\n".join(asyncio.run(run(target, args, args.port + i))), flush=True)


if __name__ == "__main__":
    main()
