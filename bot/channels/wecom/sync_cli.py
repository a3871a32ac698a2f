"""``siyu wecom sync``: the day-one sync from a terminal, with a progress bar, the counts, a summary
and each API error named. Cut short (an error past its retries, Ctrl-C), it says so; the next
run continues where it stopped."""
from __future__ import annotations

import asyncio
import sys
import time
from typing import IO

import aiohttp

from bot.channels.wecom.config import WECOM
from bot.channels.wecom.sync import DONE, FAILED, SyncAborted, for_channel
from bot.clock import SystemClock
from bot.config import Config
from bot.texts import Texts
from storage.contact_sync import RunState
from storage.engine import Database
from storage.migrate import upgrade

BAR = 24
EVERY_S = 0.5  # a terminal line at most this often (a pipe gets one every 5 s)


class Progress:
    """Draws the run's counts: one line redrawn on a terminal, a line now and then in a pipe."""

    def __init__(self, texts: Texts, out: IO[str]) -> None:
        self.texts, self.out = texts, out
        self.tty = out.isatty()
        self._last = 0.0

    def __call__(self, state: RunState, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (EVERY_S if self.tty else 5.0):
            return
        self._last = now
        staff = state.progress.get("staff") or {}
        done = sum(1 for c in staff.values() if c in (DONE, FAILED))
        filled = BAR * done // len(staff) if staff else 0
        c = state.counts
        line = self.texts("wecom_sync_progress", bar="#" * filled + "-" * (BAR - filled), done=done,
                          staff=len(staff), customers=f"{c.get('customers', 0):,}", groups=f"{c.get('groups', 0):,}",
                          calls=f"{c.get('calls', 0):,}", errors=c.get("errors", 0))
        self.out.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        self.out.flush()

    def end(self) -> None:
        if self.tty:
            self.out.write("\n")


def summary(texts: Texts, state: RunState) -> str:
    c = state.counts
    n = {k: f"{v:,}" if isinstance(v, int) else v for k, v in c.items()}
    lines = [texts("wecom_sync_done", seconds=f"{c.get('ms', 0) / 1000:.1f}", calls=n.get("calls", 0)),
             texts("wecom_sync_customers", staff=n.get("staff", 0), customers=n.get("customers", 0),
                   added=n.get("members_added", 0), changed=n.get("members_changed", 0)),
             texts("wecom_sync_relationships", added=n.get("relationships_added", 0),
                   changed=n.get("relationships_changed", 0)),
             texts("wecom_sync_groups", groups=n.get("groups", 0), added=n.get("groups_added", 0),
                   changed=n.get("groups_changed", 0), joins=n.get("group_joins", 0),
                   leaves=n.get("group_leaves", 0))]
    if state.errors:
        lines.append(texts("wecom_sync_errors", errors=c.get("errors", len(state.errors))))
        lines += [f"  {e}" for e in state.errors[-20:]]
    return "\n".join(lines)


async def _sync(config: Config, texts: Texts, out: IO[str]) -> int:
    await asyncio.to_thread(upgrade, config.storage.url)
    db = Database(config.storage.url)
    progress = Progress(texts, out)
    try:
        async with aiohttp.ClientSession() as http:
            sync = for_channel(db, http, config[WECOM], SystemClock(), report=progress)
            try:
                state = await sync.run()
            except SyncAborted as exc:
                progress.end()
                print(texts("wecom_sync_aborted", reason=str(exc)), file=sys.stderr)
                return 1
            except (KeyboardInterrupt, asyncio.CancelledError):
                progress.end()
                print(texts("wecom_sync_interrupted"), file=sys.stderr)
                return 130
    finally:
        await db.dispose()
    if state is None:
        print(texts("wecom_sync_busy"), file=sys.stderr)
        return 1
    progress(state, force=True)
    progress.end()
    print(summary(texts, state), file=out)
    return 0


def run(config: Config, out: IO[str] = sys.stdout) -> int:
    """The command's exit status: 0 done, 1 cut short or busy, 2 WeCom not configured."""
    texts = Texts(config.texts)
    if not config[WECOM].enabled:
        print(texts("wecom_sync_disabled"), file=sys.stderr)
        return 2
    try:
        return asyncio.run(_sync(config, texts, out))
    except KeyboardInterrupt:
        print(texts("wecom_sync_interrupted"), file=sys.stderr)
        return 130
