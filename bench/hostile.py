"""Hostile bodies: /healthz latency with no load, then while clients send compressed and oversized
bodies.

    python bench/hostile.py                 # starts siyu on a fresh SQLite file
    python bench/hostile.py --clients 4 --seconds 10

It starts ``siyu run`` in a subprocess, measures ``GET /healthz`` one request after another for a
few seconds, then again while ``--clients`` clients each send, as fast as they are answered, a
1 MB gzip body that inflates to 1 GB (``Content-Encoding: gzip``), a 2 MB plain body, and a
deflate body, in turn, to the sandbox's two endpoints and the REST API. It prints /healthz
p50 and p99 in both phases and what the attackers were answered.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import zlib
from collections import Counter

import aiohttp

from _spawn import spawn_siyu, wait_ready

PATHS = ("/sandbox/messages", "/sandbox/events", "/api/rewards")
TOKEN = "bench-token-0123456789abcdef"


def gzip_bomb(inflated: int) -> bytes:
    """Zeros that inflate to ``inflated`` bytes, compressed a megabyte at a time (never held whole)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip header and trailer
    chunk = b"\0" * 1_000_000
    return b"".join(packer.compress(chunk) for _ in range(inflated // len(chunk))) + packer.flush()


def bodies() -> list[tuple[dict[str, str], bytes]]:
    bomb = gzip_bomb(1_000_000_000)  # about 1 MB: 1 GB once inflated
    big = b'{"from": "u1", "text": "' + b"x" * 2_000_000 + b'"}'
    deflated = zlib.compress(b"[" * 1_000_000)
    return [({"Content-Encoding": "gzip", "Content-Type": "application/json"}, bomb),
            ({"Content-Type": "application/json"}, big),
            ({"Content-Encoding": "deflate", "Content-Type": "application/json"}, deflated)]


async def probe(session: aiohttp.ClientSession, url: str, seconds: float) -> list[float]:
    """/healthz one after another for ``seconds``; each latency in seconds."""
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        async with session.get(f"{url}/healthz") as resp:
            await resp.read()
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.01)
    return latencies


async def attack(url: str, seconds: float, payloads: list[tuple[dict[str, str], bytes]], answers: Counter[str]) -> None:
    end = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        n = 0
        while time.monotonic() < end:
            headers, body = payloads[n % len(payloads)]
            path = PATHS[n // len(payloads) % len(PATHS)]  # every body to every endpoint in turn
            n += 1
            try:
                async with session.post(f"{url}{path}", data=body,
                                        headers={**headers, "Authorization": f"Bearer {TOKEN}"}) as resp:
                    await resp.read()
                    answers[str(resp.status)] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:  # a server that cuts the upload short
                answers[type(exc).__name__] += 1


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(url: str, clients: int, seconds: float) -> None:
    payloads = bodies()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        quiet = await probe(session, url, 3.0)
        answers: Counter[str] = Counter()
        attackers = [asyncio.create_task(attack(url, seconds, payloads, answers)) for _ in range(clients)]
        busy = await probe(session, url, seconds)
        await asyncio.gather(*attackers)
    print(f"/healthz, no load:          p50 {pct(quiet, 0.5):7.1f} ms   p99 {pct(quiet, 0.99):7.1f} ms   "
          f"({len(quiet)} requests, mean {statistics.fmean(quiet) * 1000:.1f} ms)")
    print(f"/healthz, {clients} attackers {seconds:g}s: p50 {pct(busy, 0.5):7.1f} ms   p99 {pct(busy, 0.99):7.1f} ms   "
          f"({len(busy)} requests)")
    print("attackers were answered: " + ", ".join(f"{k} x{v}" for k, v in sorted(answers.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    proc = spawn_siyu(None, args.port, config=f'[api]\ntokens = [{{token = "{TOKEN}", role = "operator"}}]\n')
    url = f"http://127.0.0.1:{args.port}"
    try:
        asyncio.run(wait_ready(url))
        asyncio.run(run(url, args.clients, args.seconds))
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
