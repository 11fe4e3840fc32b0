"""A look at the database file for ``continuebot doctor``: it never creates, migrates or writes it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from storage.connections import close, open_reader
from storage.errors import StorageError
from storage.migrations import LATEST, schema_version
from storage.types import DatabaseHealth


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


async def inspect_database(path: Path, *, busy_timeout_ms: int = 2000) -> DatabaseHealth:
    """Existence, permissions, schema version against this code's, ``quick_check`` and sizes."""
    path = Path(path)
    folder_writable = path.parent.is_dir() and os.access(path.parent, os.W_OK | os.X_OK)
    exists = path.is_file()
    health = dict(
        path=str(path), exists=exists,
        writable=folder_writable and (not exists or os.access(path, os.R_OK | os.W_OK)),
        schema_version=None, supported_version=LATEST, newer_than_supported=False,
        integrity_ok=None, integrity_message=None,
        size_bytes=_size(path), wal_bytes=_size(path.with_name(path.name + "-wal")),
    )
    if not exists:
        return DatabaseHealth(**health)  # type: ignore[arg-type]
    try:
        conn = await open_reader(path, busy_timeout_ms)
    except StorageError as exc:
        health.update(integrity_ok=False, integrity_message=str(exc))
        return DatabaseHealth(**health)  # type: ignore[arg-type]
    try:
        version = await schema_version(conn)
        rows = list(await conn.execute_fetchall("PRAGMA quick_check"))
        message = "; ".join(str(r[0]) for r in rows)
        health.update(
            schema_version=version, newer_than_supported=version > LATEST,
            integrity_ok=message == "ok", integrity_message=message,
        )
    except sqlite3.Error as exc:
        health.update(integrity_ok=False, integrity_message=f"cannot read the database: {exc}")
    finally:
        await close(conn)
    return DatabaseHealth(**health)  # type: ignore[arg-type]
