"""The request log as CSV or JSONL, streamed in chunks or written to a file."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from storage import export as encode
from storage.codec import filter_sql, request_columns, request_row
from storage.connections import close, open_reader
from storage.database import NO_FILTER, Database
from storage.types import RequestFilter, RequestRow


EXPORT_CHUNK_ROWS = 500


class Exports(Database):
    """Export matching rows, oldest first, never the whole table in memory."""

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
