"""Numbered schema migrations, recorded in the database and applied in order, each in its own transaction."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from storage.codec import to_text
from storage.errors import SchemaTooNew

log = logging.getLogger(__name__)

# The text the full-text index holds for a row's outputs: the JSON array's strings, one per line.
OUTPUT_TEXT = "(SELECT group_concat(value, char(10)) FROM json_each({row}.outputs))"


@dataclass(frozen=True)
class Migration:
    """One step of the schema; never edit a released one, add the next number instead."""

    version: int
    name: str
    statements: tuple[str, ...]


REQUESTS = Migration(1, "request log", (
    """CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        prompt TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        model_name TEXT NOT NULL,
        user_id INTEGER,
        user_name TEXT,
        guild_id INTEGER,
        channel_id INTEGER,
        interaction_id INTEGER,
        parent_id INTEGER,
        seed INTEGER,
        outputs TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        prompt_tokens INTEGER,
        completion_tokens TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        queue_s REAL,
        generation_s REAL,
        owner TEXT
    )""",
    "CREATE INDEX requests_guild ON requests (guild_id, id)",
    "CREATE INDEX requests_channel ON requests (channel_id, id)",
    "CREATE INDEX requests_user ON requests (user_id, id)",
    "CREATE INDEX requests_status ON requests (status, id)",
    "CREATE INDEX requests_created ON requests (created_at)",
    # Recovery looks only at unfinished rows, by the process that owns them.
    "CREATE INDEX requests_live ON requests (owner) WHERE status IN ('queued', 'running')",
))

FULL_TEXT = Migration(2, "full-text search over prompts and outputs", (
    # Contentless: the text lives once, in requests; triggers keep the index in step.
    """CREATE VIRTUAL TABLE requests_fts USING fts5(
        prompt, outputs, content='', tokenize='unicode61 remove_diacritics 2'
    )""",
    f"""CREATE TRIGGER requests_fts_insert AFTER INSERT ON requests BEGIN
        INSERT INTO requests_fts (rowid, prompt, outputs)
        VALUES (new.id, new.prompt, {OUTPUT_TEXT.format(row='new')});
    END""",
    f"""CREATE TRIGGER requests_fts_delete AFTER DELETE ON requests BEGIN
        INSERT INTO requests_fts (requests_fts, rowid, prompt, outputs)
        VALUES ('delete', old.id, old.prompt, {OUTPUT_TEXT.format(row='old')});
    END""",
    f"""CREATE TRIGGER requests_fts_update AFTER UPDATE OF prompt, outputs ON requests BEGIN
        INSERT INTO requests_fts (requests_fts, rowid, prompt, outputs)
        VALUES ('delete', old.id, old.prompt, {OUTPUT_TEXT.format(row='old')});
        INSERT INTO requests_fts (rowid, prompt, outputs)
        VALUES (new.id, new.prompt, {OUTPUT_TEXT.format(row='new')});
    END""",
    f"""INSERT INTO requests_fts (rowid, prompt, outputs)
        SELECT id, prompt, {OUTPUT_TEXT.format(row='requests')} FROM requests""",
))

MODERATION = Migration(3, "reports, bans and the moderator audit", (
    """CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        request_id INTEGER NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
        guild_id INTEGER,
        reporter_id INTEGER NOT NULL,
        reason TEXT NOT NULL,
        created_at TEXT NOT NULL,
        resolved_by INTEGER,
        resolved_at TEXT,
        resolution TEXT
    )""",
    "CREATE INDEX reports_request ON reports (request_id)",
    "CREATE INDEX reports_reporter ON reports (reporter_id)",
    "CREATE INDEX reports_open ON reports (guild_id, id) WHERE resolved_at IS NULL",
    """CREATE TABLE bans (
        user_id INTEGER NOT NULL,
        guild_id INTEGER,
        banned_by INTEGER,
        reason TEXT,
        since TEXT NOT NULL,
        until TEXT
    )""",
    # One ban per user and guild; a NULL guild (banned everywhere) counts as one value here.
    "CREATE UNIQUE INDEX bans_user_guild ON bans (user_id, coalesce(guild_id, -1))",
    """CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        actor_id INTEGER,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT NOT NULL DEFAULT '{}',
        guild_id INTEGER,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX audit_guild ON audit (guild_id, id)",
    "CREATE INDEX audit_created ON audit (created_at)",
))

FILTER_RULES = Migration(4, "moderators' filter rules", (
    """CREATE TABLE filter_rules (
        id INTEGER PRIMARY KEY,
        guild_id INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('word', 'regex')),
        pattern TEXT NOT NULL,
        applies_to TEXT NOT NULL CHECK (applies_to IN ('prompt', 'output', 'both')),
        action TEXT NOT NULL CHECK (action IN ('block', 'flag')),
        reason TEXT NOT NULL,
        created_by INTEGER,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX filter_rules_guild ON filter_rules (guild_id, id)",
))

MIGRATIONS: tuple[Migration, ...] = (REQUESTS, FULL_TEXT, MODERATION, FILTER_RULES)
LATEST = MIGRATIONS[-1].version

BOOKKEEPING = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL
)"""


def read_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to the file behind ``conn`` (0 for a new file); changes nothing."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(version)


async def schema_version(conn: aiosqlite.Connection) -> int:
    """``read_version`` on an aiosqlite (read) connection."""
    rows = list(await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ))
    if not rows:
        return 0
    rows = list(await conn.execute_fetchall("SELECT coalesce(max(version), 0) FROM schema_migrations"))
    return int(rows[0][0])


def migrate(conn: sqlite3.Connection, clock: Callable[[], datetime], *, upto: int = LATEST) -> list[int]:
    """Apply every missing migration up to ``upto`` on an autocommit connection; returns those applied.

    Raises SchemaTooNew, before writing anything, when the file is ahead of this code. Each step
    re-reads the version inside its BEGIN IMMEDIATE, so two processes starting together apply it once.
    """
    found = read_version(conn)
    if found > LATEST:
        raise SchemaTooNew(found, LATEST)
    return [
        m.version for m in MIGRATIONS
        if found < m.version <= upto and _apply(conn, m, clock)
    ]


def _apply(conn: sqlite3.Connection, migration: Migration, clock: Callable[[], datetime]) -> bool:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(BOOKKEEPING)
        if read_version(conn) >= migration.version:
            conn.execute("ROLLBACK")
            return False
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, to_text(clock())),
        )
        conn.execute(f"PRAGMA user_version = {int(migration.version)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    log.info("database migrated to schema %d (%s)", migration.version, migration.name)
    return True
