"""Before a command uses the database: can it be reached, and is this process the only one on a
SQLite file? A problem is a sentence an operator can act on (``DatabaseUnavailable``), not the
driver's traceback: the command line prints it and exits 2.
"""
from __future__ import annotations

import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import IO

import sqlalchemy.exc
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from storage.engine import DatabaseURLError, parse_url, sync_url

CONNECT_TIMEOUT_S = 10  # an unreachable host is named after this long, not after the OS's minutes
POSTGRES_EXTRA = "pip install -e '.[postgres]'"
SQLITE_OPEN_FAILURES = ("unable to open", "readonly", "not a database", "disk I/O", "authorization denied")


class DatabaseUnavailable(Exception):
    """The database cannot be used; the message says what to do about it (never the password)."""


class DatabaseInUse(DatabaseUnavailable):
    """Another siyu process serves the same SQLite file."""


def _where(url: URL) -> str:
    host = url.host or "localhost"
    return f"{host}:{url.port}" if url.port else host


def explain(exc: BaseException, url: str) -> str | None:
    """A sentence for a failure to reach or open the database at ``url``; None if ``exc`` is not
    such a failure (a bug, then: its traceback is what a developer needs)."""
    try:
        parsed = parse_url(url)
    except DatabaseURLError as bad:
        return str(bad)
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in ("psycopg", "psycopg_binary"):
        return f"PostgreSQL needs the psycopg driver, which is not installed: {POSTGRES_EXTRA}"
    original = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    message = str(original)
    if parsed.get_backend_name() == "sqlite":
        # Opening the file failed, not a statement: the folder, the permissions, another file.
        if isinstance(original, sqlite3.OperationalError | sqlite3.DatabaseError) and any(
                words in message for words in SQLITE_OPEN_FAILURES):
            path = Path(parsed.database or "")
            if not path.parent.exists():
                return f"cannot open the SQLite database {path}: the folder {path.parent} does not exist"
            return f"cannot open the SQLite database {path}: {message}"
        return None
    # psycopg's OperationalError with no SQLSTATE is a connection that failed (a refused login,
    # an unknown host, no server): an error in a statement has one, and is not ours to explain.
    if not (type(original).__module__.split(".")[0] == "psycopg" and type(original).__name__ == "OperationalError"
            and getattr(original, "sqlstate", None) is None):
        return None
    where, user, name = _where(parsed), parsed.username or "(your login name)", parsed.database or ""
    # The server's words (sqlstate is not set on a failed connection, so they are matched).
    if re.search(r'database ".*" does not exist', message):
        flags = "".join(f" {flag} {value}" for flag, value in (("-h", parsed.host), ("-p", parsed.port),
                                                                 ("-U", parsed.username)) if value)
        return f"database {name} does not exist on {where}: create it with createdb{flags} {name}"
    if "password authentication failed" in message or "no password supplied" in message:
        return (f"PostgreSQL on {where} refused user {user}: wrong or missing password "
                "(the password in [storage] url or SIYU_STORAGE_URL)")
    if re.search(r'role ".*" does not exist', message):
        return f"PostgreSQL on {where} has no user {user}: create it (createuser) or name another in [storage] url"
    if "no pg_hba.conf entry" in message or "authentication failed" in message:
        return f"PostgreSQL on {where} does not let user {user} in: {_last_line(message)}"
    if "resolve host" in message or "translate host name" in message:
        return f"cannot find the host {parsed.host} of [storage] url: {_last_line(message)}"
    return f"cannot reach PostgreSQL on {where}: {_last_line(message)}. Is the server running there?"


def _last_line(message: str) -> str:
    """The reason without the driver's prefixes ("connection failed: connection to server ...")."""
    first = message.strip().splitlines()[0] if message.strip() else message
    return first.rsplit("failed: ", 1)[-1].replace("FATAL:  ", "").strip()


def check(url: str) -> None:
    """Connect once to ``url``; raise ``DatabaseUnavailable`` saying why if that fails."""
    engine = None
    try:
        parsed = sync_url(url)
        args = {"connect_timeout": CONNECT_TIMEOUT_S} if parsed.get_backend_name() == "postgresql" else {}
        engine = create_engine(parsed, connect_args=args)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (DatabaseURLError, ModuleNotFoundError, sqlalchemy.exc.DBAPIError) as exc:
        reason = explain(exc, url)
        if reason is None:
            raise
        raise DatabaseUnavailable(reason) from None
    finally:
        if engine is not None:
            engine.dispose()


def lock_sqlite(url: str) -> IO[bytes] | None:
    """For a SQLite database, hold an exclusive lock on ``<file>.lock`` beside it for as long as
    this process lives (the system releases it at exit, even on SIGKILL); raise ``DatabaseInUse``
    if another process holds it. SQLite has one writer and siyu's jobs and scheduler assume one
    process: two on one file would both run the scheduler. None for PostgreSQL (no lock)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    path = Path(parsed.database or "").resolve()
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = lock_path.open("a+b")
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot create the lock file {lock_path} beside the SQLite database: "
                                  f"{exc.strerror or exc}") from None
    try:
        _lock(handle)
    except OSError:
        handle.close()
        raise DatabaseInUse(
            f"another siyu process is already serving the SQLite database {path} (it holds {lock_path}); "
            "stop it first, or use PostgreSQL to run several processes on one database") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n".encode())  # who holds it, for a person who looks
    handle.flush()
    return handle


def _lock(handle: IO[bytes]) -> None:
    """A non-blocking exclusive lock on the whole file; OSError if someone else holds it."""
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
