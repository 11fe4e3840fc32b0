"""A second process for the storage tests: writes requests (or holds a lock) until it is killed."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

from storage import NewRequest, Store


def say(line: str) -> None:
    print(line, flush=True)


async def stream(path: Path) -> None:
    """Lifecycles forever, acknowledging each committed write on stdout; every third stays queued/running."""
    async with Store(path) as store:
        i = 0
        while True:
            rid = await store.record_request(NewRequest(
                source="cli", prompt=f"child prompt {i}", params={}, model_name="m", user_id=1))
            say(f"ack {rid} queued")
            if i % 3 != 0:
                await store.mark_running(rid)
                say(f"ack {rid} running")
            if i % 3 == 2:
                await store.mark_done(rid, outputs=["x" * 200], seed=1, prompt_tokens=1, completion_tokens=[1],
                                      queue_s=0.0, generation_s=0.0)
                say(f"ack {rid} done")
            i += 1


async def hold_open(path: Path) -> None:
    """Queue one request and stay alive (the owner of an unfinished row) until stdin closes."""
    async with Store(path) as store:
        rid = await store.record_request(NewRequest(source="cli", prompt="live", params={}, model_name="m"))
        say(f"ready {rid}")
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def hold_lock(path: Path, seconds: float) -> None:
    """Take the write lock with a plain connection, hold it, then commit."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO audit (action, created_at) VALUES ('lock-holder', '2025-01-01T00:00:00.000000Z')")
    say("locked")
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


if __name__ == "__main__":
    mode, db = sys.argv[1], Path(sys.argv[2])
    if mode == "stream":
        asyncio.run(stream(db))
    elif mode == "hold-open":
        asyncio.run(hold_open(db))
    else:
        hold_lock(db, float(sys.argv[3]))
