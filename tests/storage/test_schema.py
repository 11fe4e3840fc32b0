"""Migrations from empty and from every earlier version; newer schemas and bad paths refused clearly."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from storage import DatabaseUnavailable, SchemaTooNew, SchemaTooOld, Store, inspect_database
from storage.migrations import LATEST, MIGRATIONS, migrate, read_version


def clock() -> datetime:
    return datetime(2025, 1, 1, tzinfo=timezone.utc)


async def test_a_new_file_is_migrated_to_the_latest_schema(db_path: Path) -> None:
    async with Store(db_path):
        pass
    with sqlite3.connect(db_path) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [m.version for m in MIGRATIONS]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (LATEST,)


@pytest.mark.parametrize("version", range(1, LATEST))
async def test_an_older_database_is_migrated_with_its_rows_kept(db_path: Path, version: int) -> None:
    with sqlite3.connect(db_path, isolation_level=None) as conn:
        migrate(conn, clock, upto=version)
        assert read_version(conn) == version
        conn.execute(
            "INSERT INTO requests (source, status, prompt, model_name, outputs, created_at) "
            "VALUES ('cli', 'done', 'an old lighthouse prompt', 'm', ?, '2024-12-31T00:00:00.000000Z')",
            (json.dumps(["old keeper output"]),),
        )
    conn.close()
    async with Store(db_path) as store:
        [row] = await store.recent()
        assert row.prompt == "an old lighthouse prompt" and row.outputs == ("old keeper output",)
        assert [r.id for r in await store.search("keeper output")] == [row.id]
        assert await store.add_report(row.id, 7, "spam") > 0


async def test_a_newer_database_is_refused_and_left_untouched(db_path: Path) -> None:
    async with Store(db_path):
        pass
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', '2030-01-01')", (LATEST + 1,))
    conn.close()
    before = hashlib.sha256(db_path.read_bytes()).hexdigest()
    with pytest.raises(SchemaTooNew) as caught:
        async with Store(db_path):
            pass
    assert f"schema {LATEST + 1} > {LATEST}" in str(caught.value)
    assert "upgrade continuebot or restore a backup" in str(caught.value)
    assert hashlib.sha256(db_path.read_bytes()).hexdigest() == before
    health = await inspect_database(db_path)
    assert health.newer_than_supported and health.schema_version == LATEST + 1


async def test_read_only_open_of_an_unmigrated_database_says_what_to_do(db_path: Path) -> None:
    with sqlite3.connect(db_path, isolation_level=None) as conn:
        migrate(conn, clock, upto=1)
    conn.close()
    with pytest.raises(SchemaTooOld, match="migrate"):
        async with Store(db_path, read_only=True):
            pass


async def test_missing_folder_and_garbage_file_are_reported_plainly(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        async with Store(tmp_path / "nope" / "x.db"):
            pass
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseUnavailable, match="not a database"):
        async with Store(garbage):
            pass
    health = await inspect_database(tmp_path / "absent.db")
    assert not health.exists and not (tmp_path / "absent.db").exists()
