"""Lifecycle rows, moderator queries, literal search, reports, bans and the audit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage import NotFound, RequestFilter, Store
from tests.storage.conftest import FakeClock, finish, new_request


async def test_a_request_is_logged_through_its_whole_life(store: Store, clock: FakeClock) -> None:
    rid = await store.record_request(new_request("The lighthouse keeper"))
    assert (await store.get(rid)).status == "queued"  # type: ignore[union-attr]
    clock.advance(seconds=2)
    assert await store.mark_running(rid, seed=42, prompt_tokens=4)
    clock.advance(seconds=3)
    await store.mark_done(rid, outputs=["opened the door", "closed it"], seed=42, prompt_tokens=4,
                          completion_tokens=[3, 2], queue_s=2.0, generation_s=3.0)
    row = await store.get(rid)
    assert row is not None
    assert (row.status, row.outputs, row.seed, row.completion_tokens) == ("done", ("opened the door", "closed it"), 42, (3, 2))
    assert row.finished_at - row.created_at == timedelta(seconds=5)  # type: ignore[operator]
    assert row.user_name == "ada" and row.params["max_new_tokens"] == 16
    assert not await store.mark_cancelled(rid)  # a finished row keeps its outcome
    assert (await store.get(rid)).status == "done"  # type: ignore[union-attr]
    rejected = await store.record_rejected(new_request("x" * 10), "prompt too long")
    assert (await store.get(rejected)).error == "prompt too long"  # type: ignore[union-attr]


async def test_recent_filters_and_pages_newest_first(store: Store, clock: FakeClock) -> None:
    ids = []
    for i in range(7):
        ids.append(await store.record_request(new_request(f"p{i}", guild_id=100 + i % 2, user_id=i % 3)))
        clock.advance(hours=1)
    page1 = await store.recent(RequestFilter(guild_id=100), limit=2)
    page2 = await store.recent(RequestFilter(guild_id=100), before_id=page1[-1].id, limit=2)
    assert [r.id for r in page1 + page2] == [ids[6], ids[4], ids[2], ids[0]]
    since = ids[0]
    window = await store.recent(RequestFilter(since=clock.now - timedelta(hours=3)))
    assert [r.id for r in window] == ids[-3:][::-1] and since
    await store.mark_failed(ids[1], "boom")
    assert [r.id for r in await store.recent(RequestFilter(status="failed"))] == [ids[1]]
    stats = await store.stats()
    assert stats.total == 7 and stats.by_status == {"queued": 6, "failed": 1}
    assert sum(d.failures for d in stats.per_user_day) == 1


LITERALS = ['"quoted"', "100%", "%", "_", "a_b", "' OR 1=1--", "NEAR(x y)", "zz*", "NOT this", ":col", "^start"]


async def test_search_matches_user_text_literally(store: Store) -> None:
    decoy = await store.record_request(new_request("plain words about quoted things and x y start col this"))
    await finish(store, decoy, "nothing special here, a b or 1 1 zz")
    hits = {}
    for text in LITERALS:
        rid = await store.record_request(new_request(f"prefix {text} suffix"))
        hits[text] = rid
    for text in hits:
        found = [r.id for r in await store.search(text)]
        expected = [r for t, r in hits.items() if text.casefold() in f"prefix {t} suffix".casefold()]
        assert found == sorted(expected, reverse=True), text
    # outputs are searched too, and filters apply
    assert [r.id for r in await store.search("NOTHING SPECIAL")] == [decoy]
    assert await store.search("nothing special", RequestFilter(guild_id=999)) == []


async def test_reports_bans_and_audit(store: Store, clock: FakeClock) -> None:
    rid = await store.record_request(new_request())
    report = await store.add_report(rid, reporter_id=77, reason="rude")
    [open_report] = await store.open_reports(100)
    assert (open_report.id, open_report.guild_id, open_report.reason) == (report, 100, "rude")
    assert await store.resolve_report(report, moderator_id=1, resolution="removed")
    assert not await store.resolve_report(report, moderator_id=1)
    assert await store.open_reports() == []
    with pytest.raises(NotFound):
        await store.add_report(9999, 77, "missing")

    await store.ban(10, 100, by=1, reason="spam", until=clock.now + timedelta(days=1))
    assert (await store.active_ban(10, 100)).reason == "spam"  # type: ignore[union-attr]
    assert await store.active_ban(10, 200) is None
    clock.advance(days=2)
    assert await store.active_ban(10, 100) is None  # expired
    await store.ban(10, None, by=1, reason="everywhere")
    assert (await store.active_ban(10, 200)).guild_id is None  # type: ignore[union-attr]
    assert await store.unban(10, None) and not await store.unban(10, None)

    await store.audit(1, "export", target="guild:100", detail={"rows": 3}, guild_id=100)
    [entry] = await store.audit_log(guild_id=100)
    assert (entry.action, entry.detail) == ("export", {"rows": 3})


async def test_read_only_store_reads_but_refuses_writes(store: Store, db_path) -> None:  # type: ignore[no-untyped-def]
    rid = await store.record_request(new_request())
    async with Store(db_path, read_only=True) as reader:
        assert (await reader.get(rid)).prompt == "Once upon a time"  # type: ignore[union-attr]
        from storage import ReadOnlyStore
        with pytest.raises(ReadOnlyStore):
            await reader.record_request(new_request())
