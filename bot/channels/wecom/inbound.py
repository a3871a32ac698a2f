"""``GET|POST /wecom/callback``: verify, decrypt, parse, store, answer, then handle.

WeCom waits 5 s and retries three times (wecom.md §1.7). So a callback is answered 200 with an
empty body only once its inbox row is committed (never 200 for something not stored: a
failure to store answers 503 and WeCom retries), and handled after the answer from a bounded
queue. Rows still unhandled (a full queue, a crash, a failed attempt) are picked up again by a
periodic scan, at most ``MAX_ATTEMPTS`` times.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import xmltodict
from aiohttp import web

from bot.channels.wecom.crypto import CallbackCrypto, CallbackError
from bot.channels.wecom.messages import NAME, Inbound, parse
from bot.clock import Clock
from bot.committer import GroupCommit
from bot.http import read_body
from bot.numbers import parse_int
from storage import inbox
from storage.engine import Database, DatabaseBusy

log = logging.getLogger("siyu.wecom.inbound")

MAX_ATTEMPTS = 5
QUEUE_SIZE = 10_000
# Handling workers when ``[wecom] handling_workers`` is not set: see ``default_workers``.
MIN_WORKERS = 32
WORKERS_PER_CONNECTION = 2
RESCAN_EVERY_S = 30.0
# Handlers give way to callbacks being answered (WeCom's 5 s deadline), but a callback waits
# at most this long for a lull, counted from when it was queued: under sustained load the
# queue's older callbacks are handled without a pause (a pause per callback and worker held
# handling to workers / 0.2 s).
YIELD_TO_ANSWERS_S = 0.2

Handle = Callable[[Inbound], Awaitable[None]]


def default_workers(connections: int) -> int:
    """Workers for a database with ``connections`` write connections. A worker spends most of
    its time waiting in a group-commit batch, holding no connection, and more workers make
    fuller batches: 4 workers handled 107 callbacks/s, 32 handled 282/s (bench/README.md)."""
    return max(MIN_WORKERS, WORKERS_PER_CONNECTION * connections)


def _param(request: web.Request, name: str) -> str:
    value = request.query.get(name)
    if not value:
        raise CallbackError(f"query parameter '{name}' is required")
    return value


class CallbackEndpoint:
    def __init__(self, crypto: CallbackCrypto, db: Database, clock: Clock, *, replay_window_s: int,
                 handle: Handle, workers: int | None = None) -> None:
        self.crypto = crypto
        self.workers = workers or default_workers(db.connections)
        self.db = db
        self.clock = clock
        self.replay_window_s = replay_window_s
        self._handle = handle
        self._store = GroupCommit(self._store_batch)
        self._queue: asyncio.Queue[tuple[Inbound, float]] = asyncio.Queue(QUEUE_SIZE)  # with when queued
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._overflowed = False
        self._answering = 0
        self._lull = asyncio.Event()
        self._lull.set()

    # -- HTTP ------------------------------------------------------------------------------

    async def get(self, request: web.Request) -> web.Response:
        """URL verification: answer the decrypted echostr, as is, within 1 s."""
        try:
            signature, timestamp, nonce = (_param(request, n) for n in ("msg_signature", "timestamp", "nonce"))
            echostr = _param(request, "echostr")
            try:
                self.crypto.check(signature, timestamp, nonce, echostr)
            except CallbackError:
                # aiohttp reads a raw '+' in a query as a space (wecom.md §1.1).
                echostr = echostr.replace(" ", "+")
                self.crypto.check(signature, timestamp, nonce, echostr)
            echo = self.crypto.decrypt(echostr)
        except CallbackError as exc:
            return self._refuse(request, exc)
        return web.Response(body=echo, content_type="text/plain")

    async def post(self, request: web.Request) -> web.Response:
        self._answering += 1
        self._lull.clear()
        try:
            return await self._answer(request)
        finally:
            self._answering -= 1
            if not self._answering:
                self._lull.set()

    async def _answer(self, request: web.Request) -> web.Response:
        try:
            signature, timestamp, nonce = (_param(request, n) for n in ("msg_signature", "timestamp", "nonce"))
            self._check_fresh(timestamp)
            encrypt = self._envelope(await read_body(request))
            self.crypto.check(signature, timestamp, nonce, encrypt)
            plaintext = self.crypto.decrypt(encrypt)
            message = parse(plaintext)
        except CallbackError as exc:
            return self._refuse(request, exc)
        try:
            fresh = await self._store.submit((message.key, plaintext.decode("utf-8")))
        except Exception:
            log.exception("could not store callback %s; answering 503 so WeCom retries", message.key)
            return web.Response(status=503)
        if fresh:
            self.offer(message)
        return web.Response(status=200)  # an empty body: "received" (wecom.md §1.7)

    def _check_fresh(self, timestamp: str) -> None:
        if self.replay_window_s <= 0:
            return
        sent = parse_int(timestamp, 0, 10**12)
        if sent is None:
            raise CallbackError("timestamp is not a number of unix seconds")
        if abs(self.clock.now().timestamp() - sent) > self.replay_window_s:
            raise CallbackError(f"timestamp is outside the {self.replay_window_s}s replay window")

    @staticmethod
    def _envelope(body: bytes) -> str:
        try:
            doc = xmltodict.parse(body, disable_entities=True)
        except Exception as exc:  # expat errors, entity declarations, encodings
            raise CallbackError(f"body is not valid XML: {type(exc).__name__}") from None
        encrypt = (doc.get("xml") or {}).get("Encrypt") if isinstance(doc, dict) else None
        if not isinstance(encrypt, str) or not encrypt:
            raise CallbackError("body has no <Encrypt>")
        return encrypt

    @staticmethod
    def _refuse(request: web.Request, exc: CallbackError) -> web.Response:
        log.warning("refused WeCom callback (%s %s): %s", request.method, request.remote, exc)
        return web.json_response({"error": str(exc)}, status=exc.status)

    async def _store_batch(self, items: Sequence[tuple[str, str]]) -> list[bool]:
        now = self.clock.now()
        async with self.db.transaction() as session:
            fresh = await inbox.store(session, [(k, NAME, p) for k, p in items], now=now)
        seen: set[str] = set()
        results = []
        for key, _ in items:  # the same key twice in one batch: only the first is new
            results.append(key in fresh and key not in seen)
            seen.add(key)
        return results

    # -- handling ----------------------------------------------------------------------------

    def offer(self, message: Inbound) -> None:
        """Hand a stored message to the handlers. A welcome code expires in 20 s, so such a
        message is handled at once rather than behind the queue."""
        if message.key in self._in_flight:
            return
        if message.urgent:
            self._in_flight.add(message.key)
            self._spawn(self._run(message))
            return
        try:
            self._queue.put_nowait((message, asyncio.get_running_loop().time()))
            self._in_flight.add(message.key)
        except asyncio.QueueFull:
            if not self._overflowed:
                log.warning("handling queue full (%d); stored callbacks wait for the next scan", QUEUE_SIZE)
            self._overflowed = True

    async def idle(self, timeout: float = 10.0) -> bool:
        """Wait until every offered callback has been handled (or ``timeout``); True if idle."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._in_flight:
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def start(self) -> None:
        """Start the handlers, and offer what a previous process stored and did not handle."""
        for _ in range(self.workers):
            self._spawn(self._worker())
        await self.rescan()
        self._spawn(self._rescan_forever())

    async def stop(self, timeout: float = 10.0) -> None:
        """Let handling under way finish (at most ``timeout``); what is left stays stored,
        unhandled, for the next start."""
        await self.idle(timeout)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        await self._store.close(timeout)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _worker(self) -> None:
        while True:
            message, queued = await self._queue.get()
            wait = queued + YIELD_TO_ANSWERS_S - asyncio.get_running_loop().time()
            if wait > 0:
                try:
                    await asyncio.wait_for(self._lull.wait(), wait)
                except TimeoutError:
                    pass
            await self._run(message)

    async def _run(self, message: Inbound) -> None:
        try:
            await self._handle(message)
        except asyncio.CancelledError:
            raise
        except DatabaseBusy:
            # Not the callback's fault: it stays stored and unhandled, and the next scan offers it
            # again, without counting an attempt against it.
            log.warning("database busy while handling WeCom callback %s; the next scan tries it again", message.key)
        except Exception as exc:
            log.exception("handling WeCom callback %s failed; it will be tried again", message.key)
            try:
                async with self.db.transaction() as session:
                    if await inbox.note_failure(session, message.key, error=f"{type(exc).__name__}: {exc}"[:500],
                                                now=self.clock.now(), max_attempts=MAX_ATTEMPTS):
                        log.error("WeCom callback %s given up after %d attempts", message.key, MAX_ATTEMPTS)
            except Exception:
                log.exception("could not record the failure of %s", message.key)
        finally:
            self._in_flight.discard(message.key)

    async def rescan(self, *, older_than_s: float = 0.0) -> int:
        """Offer stored, unhandled callbacks again (after a restart, a full queue or a failure)."""
        cutoff = self.clock.now() - timedelta(seconds=older_than_s) if older_than_s > 0 else None
        async with self.db.read() as session:
            rows = await inbox.unhandled(session, channel=NAME, received_before=cutoff, limit=1000)
        offered = 0
        for row in rows:
            if row.key in self._in_flight or row.payload is None:
                continue
            try:
                message = parse(row.payload.encode("utf-8"))
            except CallbackError as exc:  # cannot happen for what we stored; close it visibly
                async with self.db.transaction() as session:
                    await inbox.mark_handled(session, row.key, now=self.clock.now(), error=str(exc))
                continue
            message.key = row.key
            self.offer(message)
            offered += 1
        if offered:
            log.info("offered %d stored WeCom callback(s) for handling again", offered)
        self._overflowed = False
        return offered

    async def _rescan_forever(self) -> None:
        while True:
            await asyncio.sleep(RESCAN_EVERY_S)
            try:
                await self.rescan(older_than_s=RESCAN_EVERY_S)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rescan of stored WeCom callbacks failed")
