"""The one owner of a store's SQLite connections: writer task, read-only connection, owner lock, recovery."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Self

import aiosqlite

from storage.codec import to_text
from storage.connections import Synchronous, check_writable, close, configure_writer, open_reader
from storage.errors import (
    DatabaseUnavailable, ReadOnlyStore, SchemaTooNew, SchemaTooOld, StorageError, UnstorableValue,
)
from storage.migrations import LATEST, migrate, read_version, schema_version
from storage.owners import OwnerLock, claim_dead
from storage.types import RequestFilter
from storage.values import BIND_ERRORS, first_unstorable
from storage.writer import Writer, WriteResult

log = logging.getLogger(__name__)

UNFINISHED = "status IN ('queued', 'running')"
NO_FILTER = RequestFilter()


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(timezone.utc)


class Database:
    """The one owner of the SQLite file's connections: the writer task, the read-only connection,
    the owner lock, and crash recovery. The parts of :class:`storage.Store` build on it.

    Writes go through one writer task that commits queued statements together; reads use a
    separate ``mode=ro`` connection. Several processes may open the same file at once.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        retention_days: int = 0,
        clock: Callable[[], datetime] | None = None,
        busy_timeout_ms: int = 5000,
        read_only: bool = False,
        synchronous: Synchronous = "NORMAL",
        max_batch: int = 256,
        purge_interval_s: float = 86400.0,
    ) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self.read_only = read_only
        self._clock = clock or utc_now
        self._busy_timeout_ms = busy_timeout_ms
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._purge_interval_s = purge_interval_s
        self._reader: aiosqlite.Connection | None = None
        self._writer: Writer | None = None
        self._owner: OwnerLock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._side_connections: set[aiosqlite.Connection] = set()

    # ---- lifetime -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            if self.read_only:
                await self._open_read_only()
            else:
                await self._open_writable()
        except BaseException:
            await self._close_all()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._writer is not None and self._owner is not None:
            try:
                await self._interrupt_owned(self._owner.token, "the store closed before the request finished")
            except StorageError as error:
                log.warning("could not mark this process's unfinished requests: %s", error)
        await self._close_all()

    async def _open_writable(self) -> None:
        check_writable(self.path)
        self._writer = Writer(self.path, busy_timeout_ms=self._busy_timeout_ms, max_batch=self._max_batch)
        await self._writer.open(self._prepare)
        self._owner = OwnerLock(self.path)
        self._owner.acquire()
        self._writer.start()
        self._reader = await open_reader(self.path, self._busy_timeout_ms)
        await self.recover()
        await self._after_open()

    async def _after_open(self) -> None:
        """What the store does once it is open for writing (retention, for one)."""

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """On the writer thread: refuse a newer schema untouched, then WAL, pragmas and migrations."""
        try:
            found = read_version(conn)
        except sqlite3.DatabaseError as exc:
            raise DatabaseUnavailable(self.path, str(exc)) from exc
        if found > LATEST:
            raise SchemaTooNew(found, LATEST)
        configure_writer(conn, self.path, self._synchronous)
        migrate(conn, self._clock)

    async def _open_read_only(self) -> None:
        self._reader = await open_reader(self.path, self._busy_timeout_ms)
        try:
            found = await schema_version(self._reader)
        except sqlite3.DatabaseError as exc:
            raise DatabaseUnavailable(self.path, str(exc)) from exc
        if found > LATEST:
            raise SchemaTooNew(found, LATEST)
        if found < LATEST:
            raise SchemaTooOld(found, LATEST)

    async def _close_all(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        for conn in [*self._side_connections, self._reader]:
            if conn is not None:
                await close(conn)
        self._side_connections.clear()
        self._reader = None
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    def _start(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- helpers ----------------------------------------------------------------------------

    def _now(self) -> str:
        return to_text(self._clock())

    def _write(self) -> Writer:
        if self.read_only:
            raise ReadOnlyStore("this store was opened read-only")
        if self._writer is None:
            raise StorageError("the store is not open")
        return self._writer

    def _read(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StorageError("the store is not open")
        return self._reader

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> WriteResult:
        return await self._write().execute(sql, params)

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(await self._read().execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StorageError(f"read failed: {exc}") from exc
        except BIND_ERRORS as exc:  # an id past 64 bits, text with a lone surrogate
            raise (first_unstorable(params) or UnstorableValue(str(exc))) from exc

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    # ---- crash recovery -------------------------------------------------------------------

    async def recover(self) -> int:
        """Mark interrupted the unfinished rows of every process that is gone; returns how many."""
        rows = await self._fetchall(f"SELECT DISTINCT owner FROM requests WHERE {UNFINISHED}")
        dead = claim_dead(self.path, [row[0] for row in rows])
        total = 0
        for token, claim in dead.items():
            total += await self._interrupt_owned(token, "continuebot stopped before the request finished")
            if claim is not None:
                claim.forget()
        if total:
            log.warning("recovery: marked %d unfinished request(s) of stopped processes interrupted", total)
        return total

    async def _interrupt_owned(self, token: str | None, reason: str) -> int:
        result = await self._execute(
            f"UPDATE requests SET status = 'interrupted', error = ?, finished_at = ? "
            f"WHERE owner IS ? AND {UNFINISHED}",
            (reason, self._now(), token),
        )
        return result.rowcount


def before_cursor(before_id: int | None) -> int:
    """The keyset cursor for "rows older than ``before_id``" (no cursor: every row)."""
    return before_id if before_id is not None else 2**63 - 1
