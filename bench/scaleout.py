"""Scale-out on PostgreSQL: sandbox messages and WeCom callbacks with 1 and 2 siyu processes, and the
scheduler's failover time.

    python bench/scaleout.py [--seconds 10] [--concurrency 64] [--members 2000]
        [--database-url postgresql+psycopg://postgres@localhost/siyu_scaleout]   # WIPES that database

For N = 1 and 2 it wipes the database's public schema, migrates it once (so the processes do not
race on migrating), and starts N ``siyu run`` processes on free ports against it. They share one
config file: quiet logs, the sandbox on, the WeCom channel pointed at a fake WeCom server that
runs inside this process, and ``[scheduler] leader_check_s = 0.2``. Each process gets its own
``application_name`` (siyu-scaleout-A, -B) in its database URL, so ``pg_stat_activity`` tells
which process a backend belongs to. Requests go round-robin across the processes, as a load
balancer without stickiness would send them (a member's messages reach every process in turn).

- Sandbox: ``POST /sandbox/messages`` for ``--seconds`` at ``--concurrency``, half to groups (no
  reply) and half one-to-one (a reply, i.e. an outbox row the worker delivers), after a warm-up
  in which every member has written once in its group and once one-to-one. msgs/s, p50, p99.
- WeCom: pre-encrypted text callbacks (internal members writing to the app) for ``--seconds`` at
  ``--concurrency``, after a warm-up of one callback per member. siyu stores each callback
  before answering 200 and handles it after (the fallback reply goes to the fake's
  message/send). Acknowledged callbacks/s and the answer's p50/p99; then the time from the first
  callback until ``inbox`` has no unhandled row: handled callbacks/s.
- CPU: each server process's CPU seconds (utime + stime from /proc/<pid>/stat) over each
  measurement, PostgreSQL's (every ``postgres`` process on the machine), this process's (the load
  generator and the fake WeCom), and how busy the machine's cores were, so a reader can see
  whether the cores were saturated. The 1-minute load average is printed with every figure, and
  the most PostgreSQL connections each process held at once (for max_connections).
- Failover: two processes, A started first and alone until it holds the scheduler's advisory
  lock (``bot.scheduler.LEADER_LOCK``), then B. The leader is SIGKILLed; the time until
  ``pg_locks`` shows the lock granted to another backend is the failover time (the lock is
  released when PostgreSQL sees the dead client's socket close, at once on one machine; the
  standby tries every ``leader_check_s``). The killed process is restarted as the new standby;
  five times. No traffic during failover.

Every process it starts is stopped (SIGTERM, then SIGKILL after 10 s), errors or not.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _spawn import wait_ready  # noqa: E402
from bot.scheduler import LEADER_LOCK  # noqa: E402
from bot.testing.fake_wecom import CallbackBuilder, FakeWeCom, text_message  # noqa: E402

TOKEN, AES_KEY, CORP, AGENT = "benchtoken", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww-bench-corp", 1000002
DEFAULT_URL = "postgresql+psycopg://postgres@localhost/siyu_scaleout"
APP_PREFIX = "siyu-scaleout-"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FAILOVERS = 5
# Callbacks are encrypted before the clock starts (about 0.1 ms each, on the load generator's
# core otherwise): this many per second of --seconds, reused for both runs (the schema is wiped).
WECOM_POOL_PER_S = 7000

STARTED: list[subprocess.Popen[bytes]] = []


# -- PostgreSQL -------------------------------------------------------------------------------

def libpq_url(url: str, database: str | None = None) -> str:
    """The SQLAlchemy URL as a libpq URI for psycopg (optionally another database)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def ensure_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    if not name:
        raise SystemExit(f"--database-url names no database: {url}")
    with psycopg.connect(libpq_url(url, "postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")


def wipe_and_migrate(url: str) -> None:
    import psycopg

    from storage.migrate import upgrade

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    upgrade(url)


LEADER_SQL = f"""
SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = {LEADER_LOCK >> 32}
  AND l.objid::bigint = {LEADER_LOCK & 0xFFFFFFFF} AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


async def leader(conn: Any) -> tuple[int, str] | None:
    """(backend pid, application_name) holding the scheduler's lock in this database, or None."""
    row = await (await conn.execute(LEADER_SQL)).fetchone()
    return (row[0], row[1]) if row else None


async def scalar(conn: Any, sql: str) -> int:
    return (await (await conn.execute(sql)).fetchone())[0]


# -- processes and CPU ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def spawn(name: str, url: str, config: Path) -> Server:
    from sqlalchemy.engine import make_url

    own_url = make_url(url).update_query_dict({"application_name": APP_PREFIX + name}).render_as_string(
        hide_password=False)
    port = free_port()
    env = {**os.environ, "SIYU_CONFIG": str(config), "SIYU_STORAGE_URL": own_url, "SIYU_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--port", str(port)], env=env, cwd=config.parent,
                            stdout=subprocess.DEVNULL)
    STARTED.append(proc)
    return Server(name, port, proc)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each, then SIGKILL whatever has not exited 10 s later."""
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        try:
            p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    for p in alive:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu() -> float:
    """CPU seconds of every postgres process now alive (backends come and go: a delta of this is
    a lower bound, which is why the machine's busy share is shown as well)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            if stat[stat.index("(") + 1:stat.rindex(")")].startswith("postgres"):
                fields = stat[stat.rindex(")") + 2:].split()
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # up to steal; guest time is already in user
    return total - idle, total


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class Usage:
    """CPU used over one measurement."""

    servers: list[float] = field(default_factory=list)
    postgres: float = 0.0
    client: float = 0.0
    busy: float = 0.0  # share of all cores' time that was busy, 0..1
    wall: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)


class ConnectionSampler:
    """The most PostgreSQL connections each server process held at once (pg_stat_activity by
    application_name, sampled every 0.25 s on a connection of its own)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.peak: dict[str, int] = {}

    async def __aenter__(self) -> Self:
        import psycopg

        self._conn = await psycopg.AsyncConnection.connect(libpq_url(self.url), autocommit=True)
        self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            rows = await (await self._conn.execute(
                "SELECT application_name, count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name LIKE %s GROUP BY 1",
                (APP_PREFIX + "%",))).fetchall()
            for app, count in rows:
                name = app.removeprefix(APP_PREFIX)
                self.peak[name] = max(self.peak.get(name, 0), count)
            await asyncio.sleep(0.25)

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        await self._conn.close()

    def text(self) -> str:
        return " + ".join(str(self.peak[k]) for k in sorted(self.peak)) or "?"


class CpuMeter:
    def __init__(self, servers: list[Server]) -> None:
        self.pids = [s.proc.pid for s in servers]

    def __enter__(self) -> Self:
        self.usage = Usage()
        self._load0 = loadavg()
        self._servers0 = [proc_cpu(p) for p in self.pids]
        self._pg0 = postgres_cpu()
        self._client0 = sum(os.times()[:2])
        self._ticks0 = machine_ticks()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        u = self.usage
        u.wall = time.perf_counter() - self._t0
        u.servers = [proc_cpu(p) - c for p, c in zip(self.pids, self._servers0, strict=True)]
        u.postgres = postgres_cpu() - self._pg0
        u.client = sum(os.times()[:2]) - self._client0
        busy, total = machine_ticks()
        u.busy = (busy - self._ticks0[0]) / max(1, total - self._ticks0[1])
        u.load = (self._load0, loadavg())


# -- load -------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def target(i: int, members: int, n: int) -> int:
    """Which process gets request i: round-robin in request order, shifted every other round of
    the members, so each member's messages (of both kinds) reach every process."""
    return (i % members + i // members // 2) % n


async def post_all(http: aiohttp.ClientSession, requests: list[tuple[str, dict[str, Any] | bytes]],
                   concurrency: int) -> int:
    """Warm-up: post every (url, body) at ``concurrency``; returns how many were not 200."""
    queue = list(reversed(requests))
    failed = 0

    async def worker() -> None:
        nonlocal failed
        while queue:
            url, body = queue.pop()
            kw: dict[str, Any] = {"json": body} if isinstance(body, dict) else {
                "data": body, "headers": {"Content-Type": "text/xml"}}
            try:
                async with http.post(url, **kw) as resp:
                    await resp.read()
                    failed += resp.status != 200
            except aiohttp.ClientError:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failed


async def wait_for_zero(conn: Any, sql: str, timeout: float) -> float | None:
    """Seconds until ``sql`` counts 0 (polled every 50 ms), or None after ``timeout``."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if await scalar(conn, sql) == 0:
            return time.perf_counter() - t0
        await asyncio.sleep(0.05)
    return None


OUTBOX_BUSY = "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
UNHANDLED = "SELECT count(*) FROM inbox WHERE handled_at IS NULL"


async def run_sandbox(http: aiohttp.ClientSession, conn: Any, servers: list[Server],
                      args: argparse.Namespace) -> dict[str, Any]:
    n, members, groups = len(servers), args.members, args.groups

    def body(u: int, group: bool, text: str) -> dict[str, Any]:
        return {"from": f"scale-u{u}", "name": f"成员{u}", "text": text,
                "chat": f"scale-g{u % groups}" if group else None}

    warm = [(servers[u % n].base + "/sandbox/messages", body(u, g, "hi"))
            for g in (True, False) for u in range(members)]
    warm_failed = await post_all(http, warm, args.concurrency)
    await wait_for_zero(conn, OUTBOX_BUSY, 60)

    latencies: list[float] = []
    errors = 0
    jobs = iter(range(10 ** 12))
    deadline = 0.0

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            i = next(jobs)
            u, rnd = i % members, i // members
            url = servers[target(i, members, n)].base + "/sandbox/messages"
            t0 = time.perf_counter()
            try:
                async with http.post(url, json=body(u, (u + rnd) % 2 == 0, f"消息 {rnd}")) as resp:
                    await resp.read()
                    errors += resp.status != 200
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    async with ConnectionSampler(args.database_url) as conns:
        with CpuMeter(servers) as meter:
            started = time.perf_counter()
            deadline = started + args.seconds
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            elapsed = time.perf_counter() - started
    drained = await wait_for_zero(conn, OUTBOX_BUSY, 60)
    return {"count": len(latencies), "errors": errors, "rate": len(latencies) / elapsed, "seconds": elapsed,
            "p50": percentile(latencies, 0.5) * 1000, "p99": percentile(latencies, 0.99) * 1000,
            "usage": meter.usage, "warm_failed": warm_failed, "outbox_drained_s": drained, "conns": conns.text()}


async def run_wecom(http: aiohttp.ClientSession, conn: Any, servers: list[Server], args: argparse.Namespace,
                    warm_pool: list[tuple[str, bytes]], pool: list[tuple[str, bytes]]) -> dict[str, Any]:
    n, members = len(servers), args.members
    warm = [(servers[u % n].base + path, b) for u, (path, b) in enumerate(warm_pool)]
    warm_failed = await post_all(http, warm, args.concurrency)
    await wait_for_zero(conn, UNHANDLED, 120)

    latencies: list[float] = []
    acked = errors = 0
    jobs = iter(range(len(pool)))
    deadline = 0.0
    exhausted = False

    async def worker() -> None:
        nonlocal acked, errors, exhausted
        while time.perf_counter() < deadline:
            i = next(jobs, None)
            if i is None:
                exhausted = True
                return
            path, data = pool[i]
            t0 = time.perf_counter()
            try:
                async with http.post(servers[target(i, members, n)].base + path, data=data,
                                     headers={"Content-Type": "text/xml"}) as resp:
                    await resp.read()
                    if resp.status == 200:
                        acked += 1
                    else:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    timeout = max(120.0, 12.0 * args.seconds)
    async with ConnectionSampler(args.database_url) as conns:
        with CpuMeter(servers) as meter:
            started = time.perf_counter()
            deadline = started + args.seconds
            await asyncio.gather(*(worker() for _ in range(args.concurrency)))
            elapsed = time.perf_counter() - started
            drained = await wait_for_zero(conn, UNHANDLED, timeout) is not None
            handled_s = time.perf_counter() - started
    # Not drained in time (say a process's handling queue overflowed and the rest waits for its
    # periodic rescan): the rate is what was handled by then, and the table says so.
    left = 0 if drained else await scalar(conn, UNHANDLED)
    stored = await scalar(conn, "SELECT count(*) FROM inbox WHERE channel = 'wecom'") - len(warm_pool)
    return {"count": len(latencies), "acked": acked, "errors": errors, "stored": stored, "seconds": elapsed,
            "rate": acked / elapsed, "p50": percentile(latencies, 0.5) * 1000,
            "p99": percentile(latencies, 0.99) * 1000,
            "drained": drained, "left": left, "handled_s": handled_s, "handled_rate": (stored - left) / handled_s,
            "exhausted": exhausted, "usage": meter.usage, "warm_failed": warm_failed, "conns": conns.text()}


async def failover(args: argparse.Namespace, config: Path) -> dict[str, Any]:
    import psycopg

    wipe_and_migrate(args.database_url)
    samples: list[tuple[float, float, str, str]] = []  # (released, re-granted, from, to)
    servers: dict[str, Server] = {}
    async with await psycopg.AsyncConnection.connect(libpq_url(args.database_url), autocommit=True) as conn:

        async def wait_leader(name: str, timeout: float = 20) -> tuple[int, str]:
            t0 = time.monotonic()
            while time.monotonic() - t0 < timeout:
                held = await leader(conn)
                if held and held[1] == APP_PREFIX + name:
                    return held
                await asyncio.sleep(0.05)
            raise SystemExit(f"failover: {name} did not take the scheduler's lock within {timeout:.0f}s "
                             f"(held: {await leader(conn)})")

        try:
            servers["A"] = spawn("A", args.database_url, config)
            await wait_ready(servers["A"].base)
            await wait_leader("A")
            servers["B"] = spawn("B", args.database_url, config)
            await wait_ready(servers["B"].base)
            lead, standby = "A", "B"
            for _ in range(FAILOVERS):
                await asyncio.sleep(1.0)  # the standby has been failing to take the lock for a while
                held = await leader(conn)
                if not held or held[1] != APP_PREFIX + lead:
                    raise SystemExit(f"failover: expected {lead} to lead, pg_locks says {held}")
                old_pid = held[0]
                victim = servers[lead].proc
                t0 = time.perf_counter()
                victim.send_signal(signal.SIGKILL)
                released = None
                while True:
                    held = await leader(conn)
                    now = time.perf_counter() - t0
                    if held is None or held[0] != old_pid:
                        released = released if released is not None else now
                    if held is not None and held[0] != old_pid:
                        break
                    if now > 30:
                        raise SystemExit("failover: no process took the scheduler's lock within 30 s")
                    await asyncio.sleep(0.005)
                samples.append((released, now, lead, held[1].removeprefix(APP_PREFIX)))
                victim.wait(10)
                servers[lead] = spawn(lead, args.database_url, config)  # back as the standby
                await wait_ready(servers[lead].base)
                lead, standby = standby, lead
        finally:
            stop([s.proc for s in servers.values()])
    return {"samples": samples}


# -- the run ----------------------------------------------------------------------------------

def config_text(fake_url: str) -> str:
    # replay_window_s = 0: the callbacks are encrypted (with their timestamps) once, up front,
    # and reused by both runs; the check it turns off is one comparison.
    return (f'[logging]\nlevel = "WARNING"\n[sandbox]\nenabled = true\n[server]\npublic_url = "http://127.0.0.1"\n'
            f'[wecom]\nenabled = true\ncorp_id = "{CORP}"\nagent_id = {AGENT}\nsecret = "bench-secret"\n'
            f'token = "{TOKEN}"\nencoding_aes_key = "{AES_KEY}"\napi_base_url = "{fake_url}"\nreplay_window_s = 0\n'
            f'[scheduler]\nleader_check_s = 0.2\n')


def fmt_usage(u: Usage) -> str:
    servers = " + ".join(f"{c:.1f}" for c in u.servers)
    return (f"server CPU {servers} s, postgres {u.postgres:.1f} s, client {u.client:.1f} s over {u.wall:.1f} s wall; "
            f"cores {u.busy * 100:.0f}% busy; load {u.load[0]:.2f}->{u.load[1]:.2f}")


async def main(args: argparse.Namespace) -> None:
    import psycopg

    ensure_database(args.database_url)
    workdir = Path(tempfile.mkdtemp(prefix="siyu-scaleout-"))
    builder = CallbackBuilder(TOKEN, AES_KEY, CORP, agent_id=AGENT)
    t0 = time.perf_counter()
    warm_pool = [builder.post(text_message(f"staff{u}", "你好", 1 + u, corp_id=CORP)) for u in range(args.members)]
    pool = [builder.post(text_message(f"staff{i % args.members}", f"你好 {i // args.members}", 10_000_000 + i,
                                      corp_id=CORP)) for i in range(args.seconds * WECOM_POOL_PER_S)]
    print(f"encrypted {len(warm_pool) + len(pool)} callbacks in {time.perf_counter() - t0:.1f} s; "
          f"{os.cpu_count()} cores; load {loadavg():.2f}", flush=True)
    results: dict[int, dict[str, Any]] = {}
    async with FakeWeCom(corp_id=CORP, secret="bench-secret") as fake:
        config = workdir / "config.toml"
        config.write_text(config_text(fake.base_url), encoding="utf-8")
        for n in (1, 2):
            wipe_and_migrate(args.database_url)
            servers = [spawn(name, args.database_url, config) for name in "AB"[:n]]
            try:
                for s in servers:
                    await wait_ready(s.base)
                async with (aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as http,
                            await psycopg.AsyncConnection.connect(libpq_url(args.database_url),
                                                                  autocommit=True) as conn):
                    sandbox = await run_sandbox(http, conn, servers, args)
                    print(f"N={n} sandbox: {sandbox['rate']:.0f} msgs/s, p50 {sandbox['p50']:.1f} ms, "
                          f"p99 {sandbox['p99']:.1f} ms, errors {sandbox['errors']} ({sandbox['count']} messages)\n"
                          f"    {fmt_usage(sandbox['usage'])}", flush=True)
                    fake.requests.clear()
                    wecom = await run_wecom(http, conn, servers, args, warm_pool, pool)
                    handled = (f"all handled after {wecom['handled_s']:.1f} s: {wecom['handled_rate']:.0f}/s"
                               if wecom["drained"] else
                               f"{wecom['left']} still unhandled after {wecom['handled_s']:.0f} s: "
                               f"{wecom['handled_rate']:.0f}/s")
                    print(f"N={n} wecom: {wecom['rate']:.0f} acked/s, p50 {wecom['p50']:.1f} ms, "
                          f"p99 {wecom['p99']:.1f} ms, "
                          f"errors {wecom['errors']}, {wecom['acked']} acked / {wecom['stored']} stored; {handled}"
                          + ("; the pre-encrypted callbacks ran out before --seconds" if wecom["exhausted"] else "")
                          + f"\n    {fmt_usage(wecom['usage'])}", flush=True)
                    fake.requests.clear()
                results[n] = {"sandbox": sandbox, "wecom": wecom}
            finally:
                stop([s.proc for s in servers])
        print("failover: 2 processes, leader_check_s 0.2 ...", flush=True)
        load0 = loadavg()
        fo = await failover(args, config)
        fo["load"] = (load0, loadavg())
    report(args, results, fo)


def report(args: argparse.Namespace, results: dict[int, dict[str, Any]], fo: dict[str, Any]) -> None:
    print()
    print(f"siyu scale-out on PostgreSQL: {os.cpu_count()} cores shared by the server processes, PostgreSQL and "
          f"this load generator; {args.seconds} s per measurement, concurrency {args.concurrency}, "
          f"{args.members} members, {args.groups} groups")
    print()
    print("Sandbox POST /sandbox/messages (half group, half one-to-one with a reply)")
    print(f"{'procs':>5} {'msgs/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  {'server CPU s':>12} {'pg CPU s':>8} "
          f"{'client s':>8} {'busy':>5} {'wall s':>6} {'pg conns':>8}  load")
    for n, r in results.items():
        s, u = r["sandbox"], r["sandbox"]["usage"]
        print(f"{n:>5} {s['rate']:>7.0f} {s['p50']:>7.1f} {s['p99']:>7.1f} {s['errors']:>6}  "
              f"{' + '.join(f'{c:.1f}' for c in u.servers):>12} {u.postgres:>8.1f} {u.client:>8.1f} "
              f"{u.busy * 100:>4.0f}% {u.wall:>6.1f} {s['conns']:>8}  {u.load[0]:.2f}->{u.load[1]:.2f}")
    print()
    print("WeCom encrypted text callbacks (stored before the 200, handled after)")
    print(f"{'procs':>5} {'acked/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'handled/s':>9} {'drain s':>7}  "
          f"{'server CPU s':>12} {'pg CPU s':>8} {'client s':>8} {'busy':>5} {'wall s':>6} {'pg conns':>8}  load")
    for n, r in results.items():
        w, u = r["wecom"], r["wecom"]["usage"]
        handled = f"{w['handled_rate']:.0f}" + ("" if w["drained"] else "*")
        drain = f"{w['handled_s']:.1f}" + ("" if w["drained"] else "*")
        print(f"{n:>5} {w['rate']:>7.0f} {w['p50']:>7.1f} {w['p99']:>7.1f} {w['errors']:>6} {handled:>9} {drain:>7}  "
              f"{' + '.join(f'{c:.1f}' for c in u.servers):>12} {u.postgres:>8.1f} {u.client:>8.1f} "
              f"{u.busy * 100:>4.0f}% {u.wall:>6.1f} {w['conns']:>8}  {u.load[0]:.2f}->{u.load[1]:.2f}")
    print("(CPU columns cover the sending and, for WeCom, the handling until the inbox was empty; "
          "'busy' is the share of both cores' time; "
          "'pg conns' is the most connections each process held at once.)")
    if any(r["wecom"]["exhausted"] for r in results.values()):
        print(f"note: the {WECOM_POOL_PER_S}/s pre-encrypted callbacks ran out before --seconds; "
              "the rate is still right")
    if any(not r["wecom"]["drained"] for r in results.values()):
        print("* the inbox still had unhandled rows when the wait ended: handled/s counts what was handled by then")
    for n, r in results.items():
        for kind in ("sandbox", "wecom"):
            if r[kind]["warm_failed"]:
                print(f"note: {r[kind]['warm_failed']} warm-up requests failed ({kind}, {n} processes)")
    print()
    samples = fo["samples"]
    regranted = [s[1] for s in samples]
    released = [s[0] for s in samples]
    print(f"Scheduler failover (SIGKILL of the leader, leader_check_s 0.2, {len(samples)} times, "
          f"load {fo['load'][0]:.2f}->{fo['load'][1]:.2f})")
    for i, (rel, new, old, to) in enumerate(samples, 1):
        print(f"  {i}: {old} killed -> lock released after {rel * 1000:.0f} ms, "
              f"granted to {to} after {new * 1000:.0f} ms")
    print(f"  lock granted again after: min {min(regranted):.3f} s, median {statistics.median(regranted):.3f} s, "
          f"max {max(regranted):.3f} s (released after median {statistics.median(released) * 1000:.0f} ms)")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="The database's public schema is dropped before each configuration.")
    parser.add_argument("--database-url", default=DEFAULT_URL,
                        help=f"PostgreSQL URL, created if missing and WIPED (default {DEFAULT_URL})")
    parser.add_argument("--seconds", type=int, default=10, help="length of each measurement (default 10)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (default 64)")
    parser.add_argument("--members", type=int, default=2000, help="distinct senders (default 2000)")
    parser.add_argument("--groups", type=int, default=40, help="sandbox groups the group half goes to (default 40)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        asyncio.run(main(args))
    except KeyboardInterrupt:
        print("interrupted: stopping the servers it started", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        stop(STARTED)


def _interrupted(*_: object) -> None:
    """A SIGTERM to the benchmark unwinds like Ctrl-C, so the finally blocks stop the servers."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    cli()
