"""Retention, forgetting a user, export round trips, online backup, and a clean shutdown."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
from pathlib import Path

from storage import RequestFilter, Store
from storage.export import from_record
from tests.storage.conftest import FakeClock, finish, new_request


async def test_retention_purges_old_finished_rows_at_start_and_on_demand(db_path: Path, clock: FakeClock) -> None:
    async with Store(db_path, clock=clock) as store:
        old = await store.record_request(new_request("old"))
        await finish(store, old)
        await store.add_report(old, 5, "bad")
        clock.advance(days=20)
        recent = await store.record_request(new_request("recent"))
        await finish(store, recent)
    clock.advance(days=15)  # old is 35 days old, recent 15
    async with Store(db_path, clock=clock, retention_days=30) as store:
        assert await store.get(old) is None
        assert await store.open_reports() == []
        assert await store.search("old") == []
        assert (await store.get(recent)) is not None
        clock.advance(days=16)
        assert await store.purge_older_than(30) == 1
        assert await store.recent() == []
    async with Store(db_path, clock=clock) as store:  # 0 keeps forever
        kept = await store.record_request(new_request())
        await finish(store, kept)
    clock.advance(days=3650)
    async with Store(db_path, clock=clock) as store:
        assert await store.get(kept) is not None


async def test_forget_leaves_no_byte_of_the_users_text_in_the_file(db_path: Path) -> None:
    canary = "zanzibarquokka7731"
    async with Store(db_path) as store:
        for i in range(30):
            other = await store.record_request(new_request(f"someone else {i}", user_id=2))
            await finish(store, other, f"other output {i}")
        mine = await store.record_request(new_request(f"my secret {canary} prompt", user_id=1))
        await finish(store, mine, f"output echoing {canary}")
        await store.add_report(mine, 2, f"reporting {canary}")
        await store.add_report(other, 1, "my report")
        await store.ban(1, 100, by=3, reason="x")
        await store.compact()  # checkpoint, so the bytes are in the main file before we look
        assert canary.encode() in db_path.read_bytes()  # the check below can fail
        assert await store.forget_user(1) == 1
        assert await store.search(canary) == [] and await store.get(mine) is None
        assert await store.active_ban(1, 100) is None and await store.open_reports() == []
        assert len(await store.recent(limit=100)) == 30
        for path in (p for p in db_path.parent.rglob("*") if p.is_file()):
            assert canary.encode() not in path.read_bytes(), path.name
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.execute("INSERT INTO requests_fts (requests_fts) VALUES ('integrity-check')")


async def test_exports_round_trip_and_apply_filters(store: Store, tmp_path: Path) -> None:
    tricky = 'line one\nline "two", with comma; émoji 🎈'
    for i in range(1203):  # more than two export chunks
        rid = await store.record_request(new_request(f"{tricky} {i}", guild_id=100 + i % 2))
        if i % 2:
            await finish(store, rid, tricky, "second")
    rows = {r.id: r for r in await store.recent(limit=5000)}

    jsonl = b"".join([c async for c in store.export("jsonl")]).decode()
    parsed = [from_record(json.loads(line)) for line in jsonl.splitlines()]
    assert [p.id for p in parsed] == sorted(rows) and all(p == rows[p.id] for p in parsed)

    out = tmp_path / "guild.csv"
    assert await store.export_to(out, "csv", RequestFilter(guild_id=101)) == 601
    with open(out, newline="", encoding="utf-8") as handle:
        from_csv = [from_record(rec, from_csv=True) for rec in csv.DictReader(handle)]
    assert len(from_csv) == 601 and all(r == rows[r.id] and r.guild_id == 101 for r in from_csv)
    assert io.StringIO(jsonl).readline()  # non-empty


async def test_csv_export_never_hands_a_spreadsheet_a_formula(store: Store, tmp_path: Path) -> None:
    # A member can make a prompt or a display name look like a formula; a moderator opening the
    # export in a spreadsheet must see it as text. JSONL keeps the text exactly as it was.
    risky = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "'=1", "plain"]
    for i, text in enumerate(risky):
        await store.record_request(new_request(text, user_name=text, interaction_id=i))
    rows = {r.id: r for r in await store.recent(limit=100)}
    out = tmp_path / "risky.csv"
    assert await store.export_to(out, "csv", RequestFilter()) == len(risky)
    with open(out, newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    for rec in records:
        for column, cell in rec.items():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
    assert {rec["prompt"] for rec in records} >= {"'=HYPERLINK(\"http://x\",\"y\")", "''=1", "plain"}
    assert all(from_record(rec, from_csv=True) == rows[int(rec["id"])] for rec in records)
    jsonl = b"".join([c async for c in store.export("jsonl")]).decode()
    assert sorted(json.loads(line)["prompt"] for line in jsonl.splitlines()) == sorted(risky)


async def test_backup_is_a_consistent_openable_copy(store: Store, tmp_path: Path) -> None:
    for i in range(50):
        await finish(store, await store.record_request(new_request(f"prompt {i}")))
    dest = tmp_path / "backup.db"
    await store.backup(dest)
    async with Store(dest, read_only=True) as copy:
        assert await copy.recent(limit=100) == await store.recent(limit=100)
        assert [r.id for r in await copy.search("prompt 7")] == [r.id for r in await store.search("prompt 7")]
    with sqlite3.connect(dest) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_no_thread_is_left_after_close(db_path: Path, tmp_path: Path) -> None:
    before = set(threading.enumerate())
    async with Store(db_path, retention_days=7) as store:
        rid = await store.record_request(new_request())
        await finish(store, rid)
        async for _ in store.export("csv"):
            break  # an abandoned export must not leak its connection either
        await store.backup(tmp_path / "b.db")
        await store.search("upon")
        assert set(threading.enumerate()) - before  # it does use threads while open
    async with Store(db_path, read_only=True) as reader:
        await reader.recent()
    assert set(threading.enumerate()) - before == set()
