"""The request log and moderation store: one writer task, one read-only connection, all async."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from storage import export as encode
from storage.codec import (
    audit_row, ban_row, dumps, filter_sql, report_row, request_columns, request_row, to_text,
)
from storage.connections import Synchronous, check_writable, close, configure_writer, open_reader
from storage.errors import (
    DatabaseUnavailable, NotFound, ReadOnlyStore, SchemaTooNew, SchemaTooOld, StorageError,
)
from storage.migrations import LATEST, migrate, read_version, schema_version
from storage.owners import OwnerLock, claim_dead
from storage.search import fts_phrase
from storage.types import (
    FINAL_STATUSES, AuditRow, BanRow, NewRequest, ReportRow, RequestFilter, RequestRow, Stats, UserDayStats,
)
from storage.writer import WriteResult, Writer

log = logging.getLogger(__name__)

UNFINISHED = "status IN ('queued', 'running')"
REPORT_COLUMNS = "id, request_id, guild_id, reporter_id, reason, created_at, resolved_by, resolved_at, resolution"
PURGE_CHUNK = 2000
EXPORT_CHUNK_ROWS = 500
NO_FILTER = RequestFilter()


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(timezone.utc)


class Store:
    """Every request's lifecycle, reports, bans and the audit, in one SQLite file.

    Use as ``async with Store(path) as store``. Writes go through one writer task that commits
    queued statements together; reads use a separate ``mode=ro`` connection. Several processes
    may open the same file at once.
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

    async def __aenter__(self) -> Store:
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
        if self.retention_days > 0:
            await self.purge_older_than(self.retention_days)
            self._start(self._purge_daily(), "storage-retention")

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

    async def _purge_daily(self) -> None:
        while True:
            await asyncio.sleep(self._purge_interval_s)
            try:
                await self.purge_older_than(self.retention_days)
            except asyncio.CancelledError:
                raise
            except Exception:  # loop boundary: try again next time
                log.exception("scheduled log purge failed")

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

    # ---- request lifecycle ------------------------------------------------------------------

    async def record_request(self, req: NewRequest) -> int:
        """Log a request as it arrives (status ``queued``); returns its id."""
        return await self._insert_request(req, "queued", None)

    async def record_rejected(self, req: NewRequest, reason: str) -> int:
        """Log a request turned away before queueing, with the reason; returns its id."""
        return await self._insert_request(req, "rejected", reason)

    async def _insert_request(self, req: NewRequest, status: str, error: str | None) -> int:
        now = self._now()
        owner = self._owner.token if self._owner else None
        result = await self._execute(
            "INSERT INTO requests (source, status, prompt, params, model_name, user_id, user_name, guild_id, "
            "channel_id, interaction_id, parent_id, seed, error, created_at, finished_at, owner) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (req.source, status, req.prompt, dumps(req.params), req.model_name, req.user_id, req.user_name,
             req.guild_id, req.channel_id, req.interaction_id, req.parent_id, req.params.get("seed"), error,
             now, now if status == "rejected" else None, owner),
        )
        assert result.lastrowid is not None
        return result.lastrowid

    async def mark_running(
        self, request_id: int, *, seed: int | None = None, prompt_tokens: int | None = None
    ) -> bool:
        """queued -> running; returns False when the row was not queued."""
        result = await self._execute(
            "UPDATE requests SET status = 'running', started_at = ?, seed = coalesce(?, seed), "
            "prompt_tokens = coalesce(?, prompt_tokens) WHERE id = ? AND status = 'queued'",
            (self._now(), seed, prompt_tokens, request_id),
        )
        return result.rowcount > 0

    async def mark_done(
        self,
        request_id: int,
        *,
        outputs: Sequence[str],
        seed: int,
        prompt_tokens: int,
        completion_tokens: Sequence[int],
        queue_s: float,
        generation_s: float,
    ) -> bool:
        """Record the outputs of a finished request; returns False when it had already ended."""
        now = self._now()
        result = await self._execute(
            "UPDATE requests SET status = 'done', outputs = ?, seed = ?, prompt_tokens = ?, "
            "completion_tokens = ?, queue_s = ?, generation_s = ?, finished_at = ?, "
            f"started_at = coalesce(started_at, ?) WHERE id = ? AND {UNFINISHED}",
            (dumps(list(outputs)), seed, prompt_tokens, dumps(list(completion_tokens)), queue_s,
             generation_s, now, now, request_id),
        )
        return result.rowcount > 0

    async def mark_failed(self, request_id: int, error: str) -> bool:
        """An unfinished request failed; ``error`` says why."""
        return await self._finish(request_id, "failed", error)

    async def mark_cancelled(self, request_id: int, reason: str = "cancelled") -> bool:
        """An unfinished request was cancelled (by its author, a moderator or shutdown)."""
        return await self._finish(request_id, "cancelled", reason)

    async def mark_interrupted(self, request_id: int, reason: str) -> bool:
        """An unfinished request will never finish (shutdown, lost worker)."""
        return await self._finish(request_id, "interrupted", reason)

    async def mark_expired(self, request_id: int, reason: str) -> bool:
        """An unfinished request waited or ran past its time limit."""
        return await self._finish(request_id, "expired", reason)

    async def mark_rejected(self, request_id: int, reason: str) -> bool:
        """A recorded request the engine would not take (queue full, invalid...); ``reason`` says why."""
        return await self._finish(request_id, "rejected", reason)

    async def mark_undelivered(self, request_id: int, reason: str) -> bool:
        """A done request whose result never reached the user: 'expired', its outputs kept for review."""
        result = await self._execute(
            "UPDATE requests SET status = 'expired', error = ? WHERE id = ? AND status = 'done'",
            (reason, request_id),
        )
        return result.rowcount > 0

    async def _finish(self, request_id: int, status: str, error: str) -> bool:
        result = await self._execute(
            f"UPDATE requests SET status = ?, error = ?, finished_at = ? WHERE id = ? AND {UNFINISHED}",
            (status, error, self._now(), request_id),
        )
        return result.rowcount > 0

    # ---- moderator queries ------------------------------------------------------------------

    async def get(self, request_id: int) -> RequestRow | None:
        """One request, or None."""
        row = await self._fetchone(f"SELECT {request_columns()} FROM requests r WHERE r.id = ?", (request_id,))
        return request_row(row) if row else None

    async def recent(
        self, filters: RequestFilter = NO_FILTER, *, before_id: int | None = None, limit: int = 20
    ) -> list[RequestRow]:
        """Newest first; pass the last id seen as ``before_id`` for the next page."""
        where, params = filter_sql(filters)
        rows = await self._fetchall(
            f"SELECT {request_columns()} FROM requests r WHERE {where} AND r.id < ? ORDER BY r.id DESC LIMIT ?",
            (*params, _before(before_id), limit),
        )
        return [request_row(row) for row in rows]

    async def search(
        self, text: str, filters: RequestFilter = NO_FILTER, *, before_id: int | None = None, limit: int = 20
    ) -> list[RequestRow]:
        """Requests whose prompt or an output contains ``text`` literally (case-insensitive), newest first."""
        if not text:
            return []
        where, params = filter_sql(filters)
        phrase = fts_phrase(text)
        if phrase is None:  # nothing the index holds (only punctuation): scan
            sql = (f"SELECT {request_columns()} FROM requests r WHERE {where} AND r.id < ? "
                   "AND contains_literally(?, r.prompt, r.outputs) ORDER BY r.id DESC LIMIT ?")
            args: tuple[Any, ...] = (*params, _before(before_id), text, limit)
        else:
            sql = (f"SELECT {request_columns()} FROM requests_fts f CROSS JOIN requests r ON r.id = f.rowid "
                   f"WHERE requests_fts MATCH ? AND f.rowid < ? AND {where} "
                   "AND contains_literally(?, r.prompt, r.outputs) ORDER BY f.rowid DESC LIMIT ?")
            args = (phrase, _before(before_id), *params, text, limit)
        return [request_row(row) for row in await self._fetchall(sql, args)]

    async def stats(self, filters: RequestFilter = NO_FILTER, *, per_user_day_limit: int = 100) -> Stats:
        """Totals by status, latency percentiles and per-user-per-day counts (newest days first)."""
        where, params = filter_sql(filters)
        by_status = {s: n for s, n in await self._fetchall(
            f"SELECT status, count(*) FROM requests r WHERE {where} GROUP BY status", params)}
        (timed, mean_queue) = await self._fetchone(
            f"SELECT count(generation_s), avg(queue_s) FROM requests r WHERE {where}", params)
        per_day = await self._fetchall(
            "SELECT substr(created_at, 1, 10) AS day, user_id, max(user_name), count(*), "
            "sum(status = 'failed'), avg(generation_s), avg(queue_s) "
            f"FROM requests r WHERE {where} GROUP BY day, user_id ORDER BY day DESC, count(*) DESC LIMIT ?",
            (*params, per_user_day_limit),
        )
        return Stats(
            total=sum(by_status.values()),
            by_status=by_status,
            p50_generation_s=await self._percentile(where, params, timed, 0.50),
            p95_generation_s=await self._percentile(where, params, timed, 0.95),
            mean_queue_s=mean_queue,
            per_user_day=tuple(UserDayStats(*row) for row in per_day),
        )

    async def _percentile(self, where: str, params: list[Any], count: int, q: float) -> float | None:
        if not count:
            return None
        row = await self._fetchone(
            f"SELECT generation_s FROM requests r WHERE {where} AND generation_s IS NOT NULL "
            "ORDER BY generation_s LIMIT 1 OFFSET ?",
            (*params, int(q * (count - 1))),
        )
        return row[0] if row else None

    # ---- export -------------------------------------------------------------------------------

    def export(self, fmt: Literal["csv", "jsonl"], filters: RequestFilter = NO_FILTER) -> AsyncIterator[bytes]:
        """The matching rows, oldest first, as encoded chunks; never the whole table in memory."""
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"unknown export format {fmt!r}; use csv or jsonl")
        return self._export_bytes(fmt, filters)

    async def _export_bytes(self, fmt: str, filters: RequestFilter) -> AsyncIterator[bytes]:
        async for chunk, _ in self._export_chunks(fmt, filters):
            yield chunk

    async def _export_chunks(self, fmt: str, filters: RequestFilter) -> AsyncIterator[tuple[bytes, int]]:
        lines = encode.csv_lines if fmt == "csv" else encode.jsonl_lines
        if fmt == "csv":
            yield encode.csv_header(), 0
        where, params = filter_sql(filters)
        # Its own connection: one consistent snapshot for the whole export, and other reads go on.
        conn = await open_reader(self.path, self._busy_timeout_ms, chunk=EXPORT_CHUNK_ROWS)
        self._side_connections.add(conn)
        try:
            batch: list[RequestRow] = []
            async with conn.execute(
                f"SELECT {request_columns()} FROM requests r WHERE {where} ORDER BY r.id", params
            ) as cursor:
                async for row in cursor:
                    batch.append(request_row(row))
                    if len(batch) >= EXPORT_CHUNK_ROWS:
                        yield lines(batch), len(batch)
                        batch = []
            if batch:
                yield lines(batch), len(batch)
        finally:
            self._side_connections.discard(conn)
            await close(conn)

    async def export_to(
        self, path: Path, fmt: Literal["csv", "jsonl"], filters: RequestFilter = NO_FILTER
    ) -> int:
        """Write an export file (complete or not at all); returns the number of rows."""
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"unknown export format {fmt!r}; use csv or jsonl")
        path = Path(path)
        partial = path.with_name(f".{path.name}.partial")
        rows = 0
        loop = asyncio.get_running_loop()
        # File I/O on a thread of its own, joined (idle) when the export ends.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="storage-export") as files:
            try:
                out = await loop.run_in_executor(files, partial.open, "wb")
                try:
                    async for chunk, count in self._export_chunks(fmt, filters):
                        await loop.run_in_executor(files, out.write, chunk)
                        rows += count
                finally:
                    await loop.run_in_executor(files, out.close)
                await loop.run_in_executor(files, os.replace, partial, path)
            finally:
                await loop.run_in_executor(files, functools.partial(partial.unlink, missing_ok=True))
        return rows

    # ---- reports, bans, audit ---------------------------------------------------------------

    async def add_report(self, request_id: int, reporter_id: int, reason: str, guild_id: int | None = None) -> int:
        """A member flags a request's output; returns the report id. NotFound if no such request."""
        result = await self._execute(
            "INSERT INTO reports (request_id, guild_id, reporter_id, reason, created_at) "
            "SELECT id, coalesce(?, guild_id), ?, ?, ? FROM requests WHERE id = ?",
            (guild_id, reporter_id, reason, self._now(), request_id),
        )
        if result.rowcount == 0 or result.lastrowid is None:
            raise NotFound(f"no request #{request_id}")
        return result.lastrowid

    async def open_reports(
        self, guild_id: int | None = None, *, before_id: int | None = None, limit: int = 20
    ) -> list[ReportRow]:
        """Unresolved reports, newest first (all guilds when ``guild_id`` is None)."""
        rows = await self._fetchall(
            f"SELECT {REPORT_COLUMNS} FROM reports WHERE resolved_at IS NULL "
            "AND (? IS NULL OR guild_id = ?) AND id < ? ORDER BY id DESC LIMIT ?",
            (guild_id, guild_id, _before(before_id), limit),
        )
        return [report_row(row) for row in rows]

    async def resolve_report(self, report_id: int, moderator_id: int, resolution: str = "resolved") -> bool:
        """Close an open report; False when it was already closed or does not exist."""
        result = await self._execute(
            "UPDATE reports SET resolved_by = ?, resolved_at = ?, resolution = ? "
            "WHERE id = ? AND resolved_at IS NULL",
            (moderator_id, self._now(), resolution, report_id),
        )
        return result.rowcount > 0

    async def ban(
        self, user_id: int, guild_id: int | None, *, by: int | None, reason: str | None,
        until: datetime | None = None,
    ) -> None:
        """Bar a user in a guild (``guild_id`` None: everywhere), replacing any ban there."""
        await self._execute(
            "INSERT OR REPLACE INTO bans (user_id, guild_id, banned_by, reason, since, until) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, guild_id, by, reason, self._now(), to_text(until) if until else None),
        )

    async def unban(self, user_id: int, guild_id: int | None) -> bool:
        """Lift the ban in exactly that guild (or the global one); False when there was none."""
        result = await self._execute("DELETE FROM bans WHERE user_id = ? AND guild_id IS ?", (user_id, guild_id))
        return result.rowcount > 0

    async def active_ban(self, user_id: int, guild_id: int | None) -> BanRow | None:
        """The ban that applies to the user here now: a global one first, else the guild's."""
        row = await self._fetchone(
            "SELECT user_id, guild_id, banned_by, reason, since, until FROM bans "
            "WHERE user_id = ? AND (guild_id IS NULL OR guild_id IS ?) AND (until IS NULL OR until > ?) "
            "ORDER BY guild_id IS NULL DESC LIMIT 1",
            (user_id, guild_id, self._now()),
        )
        return ban_row(row) if row else None

    async def audit(
        self, actor_id: int | None, action: str, *, target: str | None = None, detail: dict[str, Any] | None = None,
        guild_id: int | None = None,
    ) -> None:
        """Record a moderator or owner action (viewed, exported, deleted...)."""
        await self._execute(
            "INSERT INTO audit (actor_id, action, target, detail, guild_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (actor_id, action, target, dumps(detail or {}), guild_id, self._now()),
        )

    async def audit_log(self, *, guild_id: int | None = None, limit: int = 50) -> list[AuditRow]:
        """The newest audit entries (all guilds when ``guild_id`` is None)."""
        rows = await self._fetchall(
            "SELECT id, actor_id, action, target, detail, guild_id, created_at FROM audit "
            "WHERE (? IS NULL OR guild_id = ?) ORDER BY id DESC LIMIT ?",
            (guild_id, guild_id, limit),
        )
        return [audit_row(row) for row in rows]

    # ---- deletion, retention, backup ------------------------------------------------------------

    async def forget_user(self, user_id: int) -> int:
        """Delete every request, report and ban of a user, then VACUUM so no byte of their text remains.

        Returns the number of requests removed.
        """
        def delete(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM reports WHERE reporter_id = ?", (user_id,))
            removed = conn.execute("DELETE FROM requests WHERE user_id = ?", (user_id,)).rowcount
            conn.execute("DELETE FROM bans WHERE user_id = ?", (user_id,))
            # Merge the index's segments so its deleted entries are dropped, not merely masked.
            conn.execute("INSERT INTO requests_fts (requests_fts) VALUES ('optimize')")
            return removed

        removed = await self._write().transaction(delete)
        await self.compact()
        log.info("forgot user %d: %d request(s) deleted", user_id, removed)
        return removed

    async def compact(self) -> bool:
        """VACUUM, then checkpoint the WAL and truncate it; False if another process kept the WAL busy."""
        def vacuum(conn: sqlite3.Connection) -> bool:
            conn.execute("VACUUM")
            (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return busy == 0

        done = await self._write().outside_transaction(vacuum)
        if not done:
            log.warning("WAL checkpoint blocked by another reader; old pages stay in %s-wal until it ends", self.path)
        return done

    async def purge_older_than(self, days: int) -> int:
        """Delete finished requests (and their reports) and audit entries older than ``days``; returns requests."""
        if days < 1:
            raise ValueError("days must be at least 1")
        cutoff = to_text(self._clock() - timedelta(days=days))
        final = ", ".join(f"'{s}'" for s in FINAL_STATUSES)
        total = 0
        while True:  # in chunks, so other writers wait at most one chunk
            result = await self._execute(
                "DELETE FROM requests WHERE id IN (SELECT id FROM requests "
                f"WHERE created_at < ? AND status IN ({final}) LIMIT ?)",
                (cutoff, PURGE_CHUNK),
            )
            total += result.rowcount
            if result.rowcount < PURGE_CHUNK:
                break
        await self._execute("DELETE FROM audit WHERE created_at < ?", (cutoff,))
        if total:
            log.info("retention: purged %d request(s) older than %d day(s)", total, days)
        return total

    async def backup(self, dest: Path) -> None:
        """A consistent copy of the live database at ``dest``, via SQLite's online backup API."""
        dest = Path(dest)
        partial = dest.with_name(f".{dest.name}.partial")
        source = await open_reader(self.path, self._busy_timeout_ms)
        self._side_connections.add(source)
        try:
            target = await aiosqlite.connect(partial, check_same_thread=False)
            try:
                await source.backup(target)
            finally:
                await close(target)
            os.replace(partial, dest)
        except sqlite3.Error as exc:
            raise StorageError(f"backup to {dest} failed: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
            self._side_connections.discard(source)
            await close(source)


def _before(before_id: int | None) -> int:
    return before_id if before_id is not None else 2**63 - 1
