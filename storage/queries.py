"""What moderators read: one request, the newest, a literal search, statistics."""

from __future__ import annotations

from typing import Any

from storage.codec import filter_sql, request_columns, request_row
from storage.database import NO_FILTER, Database, before_cursor
from storage.search import fts_phrase
from storage.types import RequestFilter, RequestRow, Stats, UserDayStats


class RequestQueries(Database):
    """Read the request log, newest first, filtered and paged by id."""

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
            (*params, before_cursor(before_id), limit),
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
            args: tuple[Any, ...] = (*params, before_cursor(before_id), text, limit)
        else:
            sql = (f"SELECT {request_columns()} FROM requests_fts f CROSS JOIN requests r ON r.id = f.rowid "
                   f"WHERE requests_fts MATCH ? AND f.rowid < ? AND {where} "
                   "AND contains_literally(?, r.prompt, r.outputs) ORDER BY f.rowid DESC LIMIT ?")
            args = (phrase, before_cursor(before_id), *params, text, limit)
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
