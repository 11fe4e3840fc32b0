"""Filter rules per guild and the 'withheld' outcome, on a real SQLite file."""

from __future__ import annotations

import sqlite3

import pytest

from storage import RequestFilter, StorageError
from storage.types import FINAL_STATUSES, STATUSES
from tests.storage.conftest import new_request


async def add(store, guild_id=100, pattern="grimble", **overrides):
    values = {"kind": "word", "pattern": pattern, "applies_to": "both", "action": "block", "reason": "not here",
              "created_by": 7}
    values.update(overrides)
    return await store.add_filter_rule(guild_id, **values)


async def test_rules_belong_to_their_guild(store):
    first = await add(store)
    await add(store, guild_id=200, pattern="other")
    second = await add(store, pattern=r"\bfoo\d+", kind="regex", action="flag", applies_to="output")
    rules = await store.filter_rules(100)
    assert [(r.id, r.pattern, r.kind, r.action, r.applies_to, r.created_by) for r in rules] == [
        (first, "grimble", "word", "block", "both", 7), (second, r"\bfoo\d+", "regex", "flag", "output", 7)]
    assert await store.remove_filter_rule(200, first) is None, "another guild's rule is not removed"
    removed = await store.remove_filter_rule(100, first)
    assert removed is not None and removed.pattern == "grimble"
    assert [r.id for r in await store.filter_rules(100)] == [second]
    assert await store.remove_filter_rule(100, first) is None


async def test_the_schema_refuses_unknown_kinds(store):
    with pytest.raises((StorageError, sqlite3.IntegrityError)):
        await add(store, kind="glob")


async def test_a_withheld_request_keeps_its_text_and_can_be_listed(store):
    request_id = await store.record_request(new_request())
    await store.mark_running(request_id, seed=1, prompt_tokens=4)
    assert await store.mark_withheld(request_id, outputs=["the grimble"], reason="filter rule 3 (block)")
    row = await store.get(request_id)
    assert (row.status, row.outputs, row.error) == ("withheld", ("the grimble",), "filter rule 3 (block)")
    assert row.finished_at is not None
    assert [r.id for r in await store.recent(RequestFilter(status="withheld"))] == [request_id]
    assert not await store.mark_withheld(request_id, outputs=["again"], reason="x"), "a finished row stays as it is"
    assert not await store.mark_done(request_id, outputs=["x"], seed=1, prompt_tokens=1, completion_tokens=[1],
                                     queue_s=0, generation_s=0)
    assert "withheld" in STATUSES and "withheld" in FINAL_STATUSES


def test_continuebot_logs_lists_withheld_rows(tmp_path, capsys):
    import asyncio
    import json

    from bot.config import Settings
    from storage import Store
    from tests.storage.test_logs_cli import logs

    async def fill():
        async with Store(tmp_path / "bot.db") as store:
            kept = await store.record_request(new_request("kept"))
            await store.mark_withheld(kept, outputs=["the grimble"], reason="withheld by filter rule 1: no")
            await store.record_request(new_request("other"))
            return kept

    kept = asyncio.run(fill())
    assert logs(Settings(database_path=tmp_path / "bot.db"), "recent", "--status", "withheld", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["status"], r["outputs"]) for r in rows] == [(kept, "withheld", ["the grimble"])]
