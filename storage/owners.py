"""Which process owns an unfinished row: one lock file per open store, held with flock while it lives."""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)


def owners_dir(database: Path) -> Path:
    """The folder beside the database that holds the owners' lock files."""
    return database.with_name(database.name + ".owners")


class OwnerLock:
    """This store's token, proven alive by an exclusive flock on ``<db>.owners/<token>.lock``.

    The kernel drops a flock when its process dies, however it dies (SIGKILL, OOM), and a flock is
    per open file, so two stores in one process are two owners too. Unlike a pid it cannot be
    reused, and it works across containers that share the volume but all run as pid 1.
    """

    def __init__(self, database: Path) -> None:
        self.token = secrets.token_hex(8)
        self._dir = owners_dir(database)
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self._dir / f"{self.token}.lock"

    def acquire(self) -> None:
        """Create and lock this store's file (non-blocking: the name is fresh)."""
        self._dir.mkdir(mode=0o700, exist_ok=True)
        # Lock under a temporary name, then rename: another process's recovery must never find the
        # file unlocked and take us for dead.
        temporary = self._dir / f".{self.token}.tmp"
        fd = os.open(temporary, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.rename(temporary, self.path)
        self._fd = fd

    def release(self) -> None:
        """Remove and unlock the file; this store's rows then count as abandoned."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


class DeadOwner:
    """A token whose lock we took: its process is gone, and while we hold the lock nobody revives it."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    def forget(self) -> None:
        """Delete the stale lock file and let go of it."""
        self.path.unlink(missing_ok=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def claim_dead(database: Path, tokens: Iterable[str | None]) -> dict[str | None, DeadOwner | None]:
    """For each token (and every stale file in the folder) whose owner is gone, a DeadOwner to release.

    ``None`` tokens (rows written before owners were recorded) count as dead. Live owners are left out.
    """
    folder = owners_dir(database)
    names = {p.stem for p in folder.glob("*.lock")} if folder.is_dir() else set()
    dead: dict[str | None, DeadOwner | None] = {}
    for token in set(tokens) | names:
        if token is None:
            dead[None] = None
            continue
        claimed = _claim(folder / f"{token}.lock")
        if claimed is not None:
            dead[token] = claimed
    return dead


def _claim(path: Path) -> DeadOwner | None:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return DeadOwner(path, None)
    except OSError as exc:
        log.warning("cannot check owner lock %s: %s", path, exc)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return DeadOwner(path, fd)
