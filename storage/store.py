"""The request log and moderation store: every part of it on one owner of the SQLite connections."""

from __future__ import annotations

from storage.database import Database, utc_now
from storage.exports import Exports
from storage.filters import FilterQueries
from storage.moderation import Moderation
from storage.queries import RequestQueries
from storage.request_log import RequestLog
from storage.retention import Retention

__all__ = ["Store", "utc_now"]


class Store(RequestLog, RequestQueries, Exports, Moderation, Retention, FilterQueries, Database):
    """Every request's lifecycle, reports, bans and the audit, in one SQLite file.

    Use as ``async with Store(path) as store``. Each responsibility lives in its own module
    (``request_log``, ``queries``, ``exports``, ``moderation``, ``retention``, ``filters``); ``database`` owns
    the connections they share: one writer task and one read-only connection.
    """

    async def _after_open(self) -> None:
        if self.retention_days > 0:
            await self.purge_older_than(self.retention_days)
            self._start(self._purge_daily(), "storage-retention")
