"""The one task that writes: it groups queued statements into a single BEGIN IMMEDIATE transaction."""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from storage.errors import DatabaseBusy, DatabaseUnavailable, StorageError, UnstorableValue
from storage.values import BIND_ERRORS, first_unstorable

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]


@dataclass(frozen=True)
class WriteResult:
    """What one statement did: the new row's id (inserts) and how many rows it touched."""

    lastrowid: int | None
    rowcount: int


@dataclass
class _Write:
    kind: Literal["statement", "transaction", "outside", "stop"]
    future: asyncio.Future[Any]
    sql: str = ""
    params: Sequence[Any] = ()
    work: Work | None = None


class Writer:
    """Serialises every write of one process through one connection on one thread.

    Statements queued while a transaction runs are committed together in the next one (group
    commit): one thread hop and one BEGIN IMMEDIATE/COMMIT per batch, however many callers wait.
    A caller's await returns only after its statement is committed; a caller that is cancelled does
    not cancel its write. The thread holds the sqlite3 connection; the event loop never touches it.
    """

    def __init__(self, path: Path, *, busy_timeout_ms: int, max_batch: int = 256, busy_retries: int = 2) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._max_batch = max_batch
        self._busy_retries = busy_retries
        self._thread_name = f"storage-writer-{secrets.token_hex(4)}"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)
        self._conn: sqlite3.Connection | None = None
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._held: _Write | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self, prepare: Callable[[sqlite3.Connection], T]) -> T:
        """Connect on the writer thread and run ``prepare(conn)`` there (version check, pragmas, migrations)."""
        def connect_and_prepare() -> T:
            try:
                self._conn = sqlite3.connect(self._path, isolation_level=None, timeout=self._busy_timeout_ms / 1000)
                self._conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            except sqlite3.Error as exc:
                raise DatabaseUnavailable(self._path, str(exc)) from exc
            return prepare(self._conn)

        return await self._in_thread(connect_and_prepare)

    def start(self) -> None:
        """Start the writer task on the running loop."""
        self._task = asyncio.create_task(self._run(), name="storage-writer")

    async def close(self) -> None:
        """Finish every write already queued, close the connection and end the thread."""
        if self._task is not None and not self._closed:
            self._closed = True
            self._queue.put_nowait(_Write("stop", asyncio.get_running_loop().create_future()))
            await asyncio.shield(self._task)
        self._closed = True
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._in_thread(conn.close)
        # The worker is idle (the close above was its last task), so joining it takes microseconds;
        # "no thread left after close" is then exact.
        self._executor.shutdown(wait=True)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> WriteResult:
        """Run one statement in the next group transaction; returns after it is committed."""
        return await self._submit(_Write("statement", self._new_future(), sql=sql, params=params))

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(conn)`` on the writer thread inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK if it raises)."""
        return await self._submit(_Write("transaction", self._new_future(), work=work))

    async def outside_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(conn)`` on the writer thread with no transaction open (VACUUM, checkpoints)."""
        return await self._submit(_Write("outside", self._new_future(), work=work))

    def _new_future(self) -> asyncio.Future[Any]:
        if self._closed or self._task is None:
            raise StorageError("the store is closed")
        return asyncio.get_running_loop().create_future()

    async def _submit(self, write: _Write) -> Any:
        # Queued means it will run: a caller cancelled now only stops waiting, the write still commits.
        self._queue.put_nowait(write)
        return await write.future

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _next(self) -> _Write:
        if self._held is not None:
            held, self._held = self._held, None
            return held
        return await self._queue.get()

    def _take_batch(self, first: _Write) -> list[_Write]:
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if nxt.kind != "statement":
                self._held = nxt
                break
            batch.append(nxt)
        return batch

    async def _run(self) -> None:
        while True:
            write = await self._next()
            if write.kind == "stop":
                write.future.set_result(None)
                return
            batch = self._take_batch(write) if write.kind == "statement" else [write]
            try:
                results = await self._in_thread(functools.partial(self._run_batch, batch))
            except asyncio.CancelledError:
                _settle_all(batch, StorageError("the store closed before this write was committed"))
                raise
            except StorageError as exc:
                _settle_all(batch, exc)
                continue
            except BIND_ERRORS as exc:  # a transaction's work passed a value SQLite cannot bind; it was rolled back
                _settle_all(batch, UnstorableValue(str(exc)))
                continue
            except sqlite3.Error as exc:
                log.warning("storage writer: transaction rolled back: %s", exc)
                _settle_all(batch, StorageError(f"write failed: {exc}"))
                continue
            except Exception as exc:  # loop boundary: one bad batch must not stop every later write
                log.exception("storage writer: a write transaction failed")
                _settle_all(batch, StorageError(str(exc)))
                continue
            for item, result in zip(batch, results, strict=True):
                _settle(item, result)

    # ---- on the writer thread ------------------------------------------------------------------

    def _run_batch(self, batch: list[_Write]) -> list[Any]:
        conn = self._conn
        assert conn is not None
        first = batch[0]
        if first.kind == "outside":
            assert first.work is not None
            return [first.work(conn)]
        self._begin(conn)
        try:
            if first.kind == "transaction":
                assert first.work is not None
                results = [first.work(conn)]
            else:
                results = self._statements(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results

    @staticmethod
    def _statements(conn: sqlite3.Connection, batch: list[_Write]) -> list[Any]:
        return [_statement(conn, write) for write in batch]

    def _begin(self, conn: sqlite3.Connection) -> None:
        for attempt in range(self._busy_retries + 1):
            try:
                conn.execute("BEGIN IMMEDIATE")  # waits up to busy_timeout for another process's lock
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                log.warning("database write lock still held by another process (attempt %d)", attempt + 1)
        raise DatabaseBusy(
            f"the database stayed locked by another process for {self._busy_retries + 1} x "
            f"{self._busy_timeout_ms} ms; is a sqlite3 shell or another tool holding a write transaction?"
        )


def _statement(conn: sqlite3.Connection, write: _Write) -> WriteResult | StorageError:
    """Run one caller's statement in its own savepoint: if it fails, only its changes are undone.

    Whatever it raises (a value SQLite cannot bind, a constraint, a trigger), the other callers'
    statements in the shared transaction still commit, and this caller alone gets the error.
    """
    conn.execute("SAVEPOINT caller")
    try:
        cursor = conn.execute(write.sql, write.params)
    except Exception as exc:  # per-caller boundary: the error goes back to this caller only
        if not conn.in_transaction:
            raise  # SQLite ended the whole transaction (ON CONFLICT ROLLBACK, disk full): nothing is left to keep
        conn.execute("ROLLBACK TO caller")
        conn.execute("RELEASE caller")
        return first_unstorable(write.params) or StorageError(f"write failed: {exc}")
    conn.execute("RELEASE caller")
    return WriteResult(cursor.lastrowid, cursor.rowcount)


def _settle(write: _Write, result: Any) -> None:
    if write.future.cancelled():
        if isinstance(result, BaseException):
            log.debug("write for a cancelled caller failed: %s", result)
        return
    if write.future.done():
        return
    if isinstance(result, BaseException):
        write.future.set_exception(result)
    else:
        write.future.set_result(result)


def _settle_all(batch: list[_Write], exc: BaseException) -> None:
    for write in batch:
        _settle(write, exc)
