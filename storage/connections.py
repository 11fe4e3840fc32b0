"""Opening the writer and read-only connections with the pragmas continuebot relies on."""

from __future__ import annotations

import asyncio
import os
import sqlite3
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


async def open_reader(path: Path, busy_timeout_ms: int, *, chunk: int = 64) -> aiosqlite.Connection:
    """A connection that cannot write (``mode=ro``), with the literal-match function for search."""
    if not path.is_file():
        raise DatabaseUnavailable(path, "no such file (nothing has been logged yet?)")
    uri = path.resolve().as_uri() + "?mode=ro"
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
    thread exits; waiting makes "no thread left after close" exact, not just eventually true.
    """
    await conn.close()
    thread = getattr(conn, "_thread", conn)  # aiosqlite < 0.20: the connection is the thread
    while getattr(thread, "is_alive", lambda: False)():
        await asyncio.sleep(0.001)
