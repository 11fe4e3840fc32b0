"""The one task that writes: it groups queued statements into a single BEGIN IMMEDIATE transaction."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import aiosqlite

from storage.errors import DatabaseBusy, StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[aiosqlite.Connection], Awaitable[Any]]


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
    errors: list[BaseException] = field(default_factory=list)


class Writer:
    """Serialises every write of one process through one connection.

    Statements queued while a transaction runs are committed together in the next one (group
    commit): one BEGIN IMMEDIATE/COMMIT pair and one thread hop per statement, however many
    callers wait. A caller's await returns only after its statement is committed; a caller that is
    cancelled does not cancel its write.
    """

    def __init__(self, conn: aiosqlite.Connection, *, max_batch: int = 256, busy_retries: int = 2) -> None:
        self._conn = conn
        self._max_batch = max_batch
        self._busy_retries = busy_retries
        self._queue: asyncio.Queue[_Write] = asyncio.Queue()
        self._held: _Write | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """Start the writer task on the running loop."""
        self._task = asyncio.create_task(self._run(), name="storage-writer")

    async def close(self) -> None:
        """Finish every write already queued, then stop the task."""
        if self._task is None or self._closed:
            return
        self._closed = True
        stop = _Write("stop", asyncio.get_running_loop().create_future())
        self._queue.put_nowait(stop)
        await asyncio.shield(self._task)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> WriteResult:
        """Run one statement in the next group transaction; returns after it is committed."""
        return await self._submit(_Write("statement", self._new_future(), sql=sql, params=params))

    async def transaction(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``work(conn)`` alone inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK if it raises)."""
        return await self._submit(_Write("transaction", self._new_future(), work=work))

    async def outside_transaction(self, work: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``work(conn)`` with no transaction open (VACUUM, checkpoints)."""
        return await self._submit(_Write("outside", self._new_future(), work=work))

    def _new_future(self) -> asyncio.Future[Any]:
        if self._closed or self._task is None:
            raise StorageError("the store is closed")
        return asyncio.get_running_loop().create_future()

    async def _submit(self, write: _Write) -> Any:
        self._queue.put_nowait(write)
        return await asyncio.shield(write.future)

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
                await self._run_batch(batch)
            except asyncio.CancelledError:
                _fail(batch, StorageError("the store closed before this write was committed"))
                raise
            except StorageError as exc:
                _fail(batch, exc)
            except sqlite3.Error as exc:
                log.warning("storage writer: transaction rolled back: %s", exc)
                _fail(batch, StorageError(f"write failed: {exc}"))
            except Exception as exc:  # loop boundary: one bad batch must not stop every later write
                log.exception("storage writer: a write transaction failed")
                _fail(batch, StorageError(str(exc)))

    async def _run_batch(self, batch: list[_Write]) -> None:
        first = batch[0]
        if first.kind == "outside":
            assert first.work is not None
            _settle(first, await first.work(self._conn))
            return
        await self._begin()
        try:
            if first.kind == "transaction":
                assert first.work is not None
                results: list[Any] = [await first.work(self._conn)]
            else:
                results = await self._statements(batch)
            await self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                await self._conn.execute("ROLLBACK")
            raise
        for write, result in zip(batch, results):
            _settle(write, result)

    async def _statements(self, batch: list[_Write]) -> list[Any]:
        results: list[Any] = []
        for write in batch:
            try:
                cursor = await self._conn.execute(write.sql, write.params)
                results.append(WriteResult(cursor.lastrowid, cursor.rowcount))
            except sqlite3.Error as exc:
                # SQLite undid just this statement; the others in the transaction still commit.
                results.append(StorageError(f"write failed: {exc}"))
                if not self._conn.in_transaction:
                    raise
        return results

    async def _begin(self) -> None:
        for attempt in range(self._busy_retries + 1):
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                log.warning("database write lock still held by another process (attempt %d)", attempt + 1)
        raise DatabaseBusy(
            "the database stayed locked by another process; is a long export or sqlite3 shell holding it?"
        )


def _settle(write: _Write, result: Any) -> None:
    if write.future.done():
        return
    if isinstance(result, BaseException):
        write.future.set_exception(result)
    else:
        write.future.set_result(result)


def _fail(batch: list[_Write], exc: BaseException) -> None:
    for write in batch:
        _settle(write, exc)
