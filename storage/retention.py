"""Deleting data: a member's on request, old rows by age (daily), compaction and backups."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import aiosqlite

from storage.codec import to_text
from storage.connections import close, open_reader
from storage.database import Database
from storage.errors import StorageError
from storage.types import FINAL_STATUSES

log = logging.getLogger(__name__)

PURGE_CHUNK = 2000


class Retention(Database):
    """forget_user, purge_older_than (also daily when retention is set), compact, backup."""

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


    async def _purge_daily(self) -> None:
        while True:
            await asyncio.sleep(self._purge_interval_s)
            try:
                await self.purge_older_than(self.retention_days)
            except asyncio.CancelledError:
                raise
            except Exception:  # loop boundary: try again next time
                log.exception("scheduled log purge failed")
