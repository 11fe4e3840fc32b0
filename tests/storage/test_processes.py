"""Several processes on one database: a SIGKILLed writer, a live owner, a long external write lock."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import Store
from tests.storage.conftest import new_request

ROOT = Path(__file__).resolve().parents[2]


def child(mode: str, db: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.storage.child_writer", mode, str(db), *extra],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


async def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return (await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)).strip()


async def test_sigkilled_writer_leaves_acknowledged_rows_and_recovery_interrupts_the_rest(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with Store(db_path):
        pass  # create and migrate first, so the child starts writing at once
    proc = child("stream", db_path)
    acked: dict[int, str] = {}
    try:
        while len(acked) < 90:
            line = await read_line(proc)
            assert line.startswith("ack "), line
            _, rid, status = line.split()
            acked[int(rid)] = status
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = dict(conn.execute("SELECT id, status FROM requests").fetchall())
    order = ["queued", "running", "done"]
    for rid, status in acked.items():
        assert rid in stored, f"acknowledged request {rid} lost"
        assert order.index(stored[rid]) >= order.index(status)

    caplog.set_level(logging.WARNING, logger="storage.store")
    async with Store(db_path) as store:
        after = {rid: (await store.get(rid)) for rid in stored}
    unfinished = [rid for rid, s in stored.items() if s in ("queued", "running")]
    assert unfinished
    assert all(after[rid].status == "interrupted" for rid in unfinished)  # type: ignore[union-attr]
    assert all(after[rid].status == "done" for rid, s in stored.items() if s == "done")  # type: ignore[union-attr]
    assert f"marked {len(unfinished)} unfinished request(s)" in caplog.text


async def test_recovery_leaves_a_live_processes_rows_alone(db_path: Path) -> None:
    async with Store(db_path):
        pass
    proc = child("hold-open", db_path)
    try:
        line = await read_line(proc)
        rid = int(line.split()[1])
        async with Store(db_path) as store:
            assert await store.recover() == 0
            assert (await store.get(rid)).status == "queued"  # type: ignore[union-attr]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert await store.recover() == 1
            row = await store.get(rid)
            assert row is not None and row.status == "interrupted" and row.finished_at is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_two_second_external_write_lock_only_delays_writes(db_path: Path) -> None:
    async with Store(db_path) as store:
        proc = child("hold-lock", db_path, "2")
        try:
            assert await read_line(proc) == "locked"
            lags: list[float] = []

            async def tick() -> None:
                loop = asyncio.get_running_loop()
                while True:
                    expected = loop.time() + 0.01
                    await asyncio.sleep(0.01)
                    lags.append(loop.time() - expected)

            ticker = asyncio.create_task(tick())
            start = time.monotonic()
            rids = await asyncio.gather(*(store.record_request(new_request(f"p{i}")) for i in range(20)))
            waited = time.monotonic() - start
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        finally:
            proc.wait()
        assert waited > 1.0  # it really waited for the other process
        assert len(set(rids)) == 20
        assert [(await store.get(r)).prompt for r in rids] == [f"p{i}" for i in range(20)]  # type: ignore[union-attr]
        assert max(lags) < 0.5  # and the event loop kept running meanwhile
