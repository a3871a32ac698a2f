"""``siyu``: the command line. ``siyu run`` serves the bot; ``siyu db upgrade`` migrates."""
from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import ipaddress
import logging
import sys
from collections.abc import Iterable, Sequence
from typing import IO

from bot import logs
from bot.builtin import FEATURES, load_config
from bot.channels.sandbox.config import SANDBOX
from bot.config import Config, ConfigError, config_file
from bot.feature import Feature

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siyu",
        description="siyu (私域): a community bot for brands on WeCom and WeChat.",
        epilog="Config is read from --config, else $SIYU_CONFIG, else ./config.toml, else built-in "
               "defaults (SQLite ./siyu.db, sandbox channel on, http://127.0.0.1:8080).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="serve the bot (applies migrations first)",
                         description="Serve the bot: webhooks, the sandbox page and the outbox worker.")
    run.add_argument("--config", metavar="PATH", help="TOML config file")
    run.add_argument("--host", help="address to listen on (overrides [server] host)")
    run.add_argument("--port", type=int, help="port to listen on (overrides [server] port)")

    db = sub.add_parser("db", help="database maintenance", description="Database maintenance.")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    up = db_sub.add_parser("upgrade", help="apply all migrations", description="Apply all Alembic migrations.")
    up.add_argument("--config", metavar="PATH", help="TOML config file")

    wecom = sub.add_parser("wecom", help="WeCom (企业微信) maintenance", description="WeCom (企业微信) maintenance.")
    wecom_sub = wecom.add_subparsers(dest="wecom_command", metavar="ACTION", required=True)
    sync = wecom_sub.add_parser(
        "sync", help="read the staff's customers and the customer groups from WeCom",
        description="Read from WeCom the staff who have the customer-contact feature, their customers (跟进人 "
                    "relationships) and the customer groups with their members, and write them as members, "
                    "relationships, groups and memberships. Paced by [wecom] sync_calls_per_s; an interrupted "
                    "run continues where it stopped; a second run changes only what changed. Exit status: 0 "
                    "done, 1 cut short (run it again) or another process is syncing, 2 WeCom not configured.")
    sync.add_argument("--config", metavar="PATH", help="TOML config file")
    return parser


def _load(path: str | None, features: Iterable[Feature]) -> Config:
    try:
        return load_config(path, features=features)
    except ConfigError as exc:
        print(f"siyu: configuration error in {exc.source}:", file=sys.stderr)
        for key, message in exc.problems:
            print(f"  {key}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _database(url: str, *, serving: bool) -> IO[bytes] | None:
    """Reach the database before anything uses it: a missing database, a wrong password, a host
    that does not answer or a missing driver is one sentence and exit 2, not a traceback. When
    ``serving`` on SQLite, hold the file's lock (released when the process ends)."""
    from storage.preflight import DatabaseUnavailable, check, lock_sqlite

    try:
        check(url)
        return lock_sqlite(url) if serving else None
    except DatabaseUnavailable as exc:
        print(f"siyu: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _explained(exc: BaseException, url: str) -> int:
    """The exit status for a database failure after the check (the server went away meanwhile),
    said in one sentence; anything else is a bug and keeps its traceback."""
    from storage.preflight import explain

    reason = explain(exc, url)
    if reason is None:
        raise exc
    print(f"siyu: {reason}", file=sys.stderr)
    return EXIT_CONFIG


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve to anything
        return False


def _use_uvloop() -> None:
    """uvloop (libuv) runs aiohttp's networking markedly faster than asyncio's own loop; it is
    not available on Windows, where the standard loop serves."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _freeze_heap(_app: object) -> None:
    # Everything built at start-up lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise stall every request for milliseconds.
    gc.collect()
    gc.freeze()


def main(argv: Sequence[str] | None = None, *, features: Iterable[Feature] = FEATURES) -> int:
    """The ``siyu`` command. A brand's own entry point passes its features (``[*FEATURES, mine]``)."""
    args = _parser().parse_args(argv)
    config = _load(args.config, features)
    logs.setup(config.logging, config.zone)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)  # a line per state change otherwise
    read = config_file(args.config)
    logging.getLogger("siyu.config").info(
        "config: %s", f"read {read.resolve()}" if read else "no config.toml here: the built-in defaults")
    if args.command == "db":
        from storage.migrate import head_revision, upgrade

        for note in config.deprecations:
            logging.getLogger("siyu.config").warning("config: %s", note)
        _database(config.storage.url, serving=False)
        try:
            upgrade(config.storage.url)
        except Exception as exc:  # noqa: BLE001 - explained if it is the database, re-raised if not
            return _explained(exc, config.storage.url)
        print(f"siyu: database at revision {head_revision()}")
        return 0

    if args.command == "wecom":
        from bot.channels.wecom.sync_cli import run as sync

        _database(config.storage.url, serving=False)
        return sync(config)

    from bot.app import create_app
    from bot.serve import serve

    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if not 1 <= port <= 65535:
        print(f"siyu: --port {port}: must be between 1 and 65535", file=sys.stderr)
        return EXIT_CONFIG
    if config[SANDBOX].enabled and not _loopback(host):
        logging.getLogger("siyu.cli").warning(
            "the sandbox channel is on while siyu listens on %s: %s. In production turn it off: "
            "[sandbox] enabled = false (or SIYU_SANDBOX_ENABLED=false)", host,
            "anyone who reaches this port can speak as any member or operator ([sandbox] allow_remote = true)"
            if config[SANDBOX].allow_remote else "it answers clients on this machine only")
    lock = _database(config.storage.url, serving=True)  # noqa: F841 - held until the process ends
    _use_uvloop()
    app = create_app(config)
    app.on_startup.append(_freeze_heap)
    sandbox = f" — sandbox page: http://{host}:{port}/sandbox" if config[SANDBOX].enabled else ""
    try:
        asyncio.run(serve(app, host, port, ready_message=f"siyu: serving on http://{host}:{port}{sandbox}"))
    except OSError as exc:  # the port is taken, the address is not this machine's ...
        print(f"siyu: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        if exc.errno == errno.EADDRINUSE:
            print(f"siyu: another program (another siyu run?) listens on port {port}: stop it, or choose "
                  "another port with --port N (or [server] port)", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - explained if it is the database, re-raised if not
        return _explained(exc, config.storage.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
