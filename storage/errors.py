"""Errors of the storage library.

    StorageError
    ├── DatabaseUnavailable   the file cannot be opened or created (path, permissions, not a database)
    ├── SchemaTooNew          written by a newer continuebot; refused untouched
    ├── SchemaTooOld          a read-only open of a database that still needs migrating
    ├── DatabaseBusy          another process held the write lock longer than we wait
    ├── ReadOnlyStore         a write on a store opened with ``read_only=True``
    ├── UnstorableValue       a value SQLite cannot hold (an integer outside 64 bits, text with a lone
    │                         surrogate, an unsupported type); only that caller's write fails
    └── NotFound              the request (or report) named does not exist
"""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """Base of the storage library's errors; the message is one line fit for an operator."""


class DatabaseUnavailable(StorageError):
    """The database file cannot be opened or created."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"cannot open database {path}: {reason}; check DATABASE_PATH and the folder's permissions"
        )
        self.path = path
        self.reason = reason


class SchemaTooNew(StorageError):
    """The file's schema is newer than this code knows; it is left exactly as it was."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"database was written by a newer continuebot (schema {found} > {supported}); "
            "upgrade continuebot or restore a backup"
        )
        self.found = found
        self.supported = supported


class SchemaTooOld(StorageError):
    """A read-only open found a schema that a writable open would migrate first."""

    def __init__(self, found: int, supported: int) -> None:
        super().__init__(
            f"database schema {found} is older than this continuebot's ({supported}); "
            "start the bot (or any write command) once to migrate it"
        )
        self.found = found
        self.supported = supported


class DatabaseBusy(StorageError):
    """The write lock stayed taken by another process for longer than we wait."""


class ReadOnlyStore(StorageError):
    """A write was asked of a store opened read-only."""


class NotFound(StorageError):
    """The row named does not exist."""


class UnstorableValue(StorageError, ValueError):
    """A value SQLite cannot store; ``reason`` says why, ``position`` is its statement parameter (1-based) if known."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        where = f"parameter {position}" if position is not None else "a value"
        super().__init__(f"cannot store {where}: {reason}")
        self.reason = reason
        self.position = position
