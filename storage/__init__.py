"""SQLite request log and moderation store; knows nothing of Discord or torch."""

from storage.errors import (
    DatabaseBusy, DatabaseUnavailable, NotFound, ReadOnlyStore, SchemaTooNew, SchemaTooOld, StorageError,
    UnstorableValue,
)
from storage.health import inspect_database
from storage.store import Store
from storage.types import (
    AuditRow, BanRow, DatabaseHealth, FilterRuleRow, NewRequest, ReportRow, RequestFilter, RequestRow, Stats, UserDayStats,
)

__all__ = [
    "AuditRow", "BanRow", "DatabaseBusy", "DatabaseHealth", "DatabaseUnavailable", "FilterRuleRow", "NewRequest", "NotFound",
    "ReadOnlyStore", "ReportRow", "RequestFilter", "RequestRow", "SchemaTooNew", "SchemaTooOld", "Stats",
    "StorageError", "Store", "UnstorableValue", "UserDayStats", "inspect_database",
]
