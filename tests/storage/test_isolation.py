"""One caller's bad value fails only that caller: the good writes committed in the same transaction stay."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from storage import StorageError, Store, UnstorableValue
from storage.values import check_storable, unstorable_reason
from storage.writer import Writer
from tests.storage.conftest import new_request

HOSTILE = {
    "a user id of 2**63": {"user_id": 2**63},
    "a channel id of -(2**63) - 1": {"channel_id": -(2**63) - 1},
    "a prompt with a lone surrogate": {"prompt": "hello \ud800 there"},
}


@pytest.mark.parametrize("bad", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_good_writes_around_a_bad_one_all_commit(
    store: Store, bad: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    good = [new_request(f"ordinary request {n}", user_id=n) for n in range(8)]
    hostile = new_request(**{"prompt": "hostile", **bad})  # type: ignore[arg-type]
    requests = [*good[:4], hostile, *good[4:]]
    # Queued in the same instant: the writer commits them together in one transaction.
    results = await asyncio.gather(*(store.record_request(r) for r in requests), return_exceptions=True)

    error = results.pop(4)
    assert isinstance(error, UnstorableValue), error
    assert "64-bit" in str(error) or "lone surrogate" in str(error)
    assert all(isinstance(r, int) for r in results), results
    rows = await store.recent(limit=50)
    assert sorted(row.prompt for row in rows) == sorted(r.prompt for r in good)
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a value a user sent"


async def test_a_failed_statement_leaves_none_of_its_changes(tmp_path: Path) -> None:
    # ON CONFLICT FAIL keeps the rows a statement changed before it failed, unless its savepoint is undone.
    writer = Writer(tmp_path / "w.db", busy_timeout_ms=1000)
    await writer.open(lambda conn: conn.executescript(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER UNIQUE); INSERT INTO t VALUES (1, 1), (2, 2), (3, 3);"))
    writer.start()
    try:
        before, half_done, after = await asyncio.gather(
            writer.execute("INSERT INTO t VALUES (4, 4)"),
            writer.execute("UPDATE OR FAIL t SET v = 10 WHERE id IN (1, 2)"),  # row 1 changes, row 2 then clashes
            writer.execute("INSERT INTO t VALUES (5, 5)"),
            return_exceptions=True,
        )
        assert isinstance(half_done, StorageError) and "UNIQUE" in str(half_done)
        assert before.rowcount == after.rowcount == 1  # type: ignore[union-attr]
        rows = await writer.outside_transaction(lambda conn: conn.execute("SELECT id, v FROM t ORDER BY id").fetchall())
    finally:
        await writer.close()
    assert rows == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]


async def test_out_of_range_ids_in_reads_and_deletes_get_a_clear_error(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    kept = await store.record_request(new_request())
    with pytest.raises(UnstorableValue, match="64-bit"):
        await store.get(10**20)
    with pytest.raises(UnstorableValue):
        await store.forget_user(2**64)
    with pytest.raises(UnstorableValue, match="lone surrogate"):
        await store.search("\udfff")
    assert (await store.get(kept)) is not None
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]


@pytest.mark.parametrize("value", [None, 0, -(2**63), 2**63 - 1, True, 1.5, float("nan"), b"\xff", "é 🙂"])
def test_what_sqlite_stores_passes_the_check(value: object) -> None:
    assert unstorable_reason(value) is None
    with sqlite3.connect(":memory:") as conn:
        conn.execute("SELECT ?", (value,))


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, "\ud83d", [1], {"a": 1}])
def test_what_sqlite_refuses_is_named_by_the_check(value: object) -> None:
    with pytest.raises(UnstorableValue) as caught:
        check_storable(("fine", value))
    assert caught.value.position == 2
    with sqlite3.connect(":memory:") as conn, pytest.raises((OverflowError, UnicodeEncodeError, sqlite3.Error)):
        conn.execute("SELECT ?", (value,))
