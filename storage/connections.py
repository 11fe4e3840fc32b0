"""Opening the writer and read-only connections with the pragmas continuebot relies on."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Literal

import aiosqlite

from storage.errors import DatabaseUnavailable
from storage.search import contains_literally

Synchronous = Literal["NORMAL", "FULL"]
# Bounded WAL after a large transaction (purge, VACUUM) instead of keeping its peak size forever.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


def check_writable(path: Path) -> None:
    """Raise DatabaseUnavailable unless the file (or its folder, for a new file) can be written."""
    folder = path.parent
    if not folder.is_dir():
        raise DatabaseUnavailable(path, f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DatabaseUnavailable(path, f"the folder {folder} is not writable (SQLite keeps its -wal file there)")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseUnavailable(path, "the file is not readable and writable by this user")


def configure_writer(conn: sqlite3.Connection, path: Path, synchronous: Synchronous) -> None:
    """WAL, the chosen durability, enforced foreign keys and zeroed deleted content (on the writer thread)."""
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise DatabaseUnavailable(path, f"cannot switch to WAL journaling (got {mode})")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")


JOIN_TIMEOUT_S = 1.0


def _read_only_uri(path: Path) -> str:
    if not path.is_file():
        raise DatabaseUnavailable(path, "no such file (nothing has been logged yet?)")
    return path.resolve().as_uri() + "?mode=ro"


async def open_reader(path: Path, busy_timeout_ms: int, *, chunk: int = 64) -> aiosqlite.Connection:
    """A connection that cannot write (``mode=ro``), with the literal-match function for search."""
    uri = _read_only_uri(path)  # one stat(): not worth a thread, which would outlive close()
    try:
        conn = await aiosqlite.connect(uri, uri=True, isolation_level=None, iter_chunk_size=chunk)
    except sqlite3.Error as exc:
        raise DatabaseUnavailable(path, str(exc)) from exc
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await conn.execute("PRAGMA query_only = ON")
        await conn.create_function("contains_literally", 3, contains_literally, deterministic=True)
    except BaseException:
        await close(conn)
        raise
    return conn


async def close(conn: aiosqlite.Connection) -> None:
    """Close ``conn`` and wait (without blocking the loop) until its worker thread has ended.

    ``Connection.close`` returns once the thread has closed the database but a moment before the
    thread exits; joining it makes "no thread left after close" exact, not just eventually true.
    """
    thread = await _worker_thread(conn)
    await conn.close()
    if thread is not None:
        # The thread has run its last task and is returning: the join takes microseconds, and the
        # timeout bounds it. (A helper thread to join it would itself be a thread left behind.)
        thread.join(timeout=JOIN_TIMEOUT_S)


async def _worker_thread(conn: aiosqlite.Connection) -> threading.Thread | None:
    """The thread aiosqlite runs ``conn`` on, found with public API only: a SQL function runs there."""
    found: list[threading.Thread] = []

    def record() -> int:
        found.append(threading.current_thread())
        return 0

    try:
        await conn.create_function("continuebot_worker", 0, record)
        await conn.execute_fetchall("SELECT continuebot_worker()")
    except (sqlite3.Error, ValueError):  # already closed, or never opened
        return None
    return found[0] if found else None
