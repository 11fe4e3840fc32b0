"""Storage benchmark: request lifecycles/s with event-loop lag, full-text search latency, export rows/s.

    python benchmarks/storage.py [--lifecycles 5000] [--rows 100000] [--json]

Each figure is measured next to a baseline from the same run: group commit against one
transaction per write, indexed search against a full scan, streamed export against a bare SELECT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import NewRequest, Store  # noqa: E402
from storage.codec import dumps, to_text  # noqa: E402

OUTPUT_CHARS = 500
TARGET_LIFECYCLES = 2000.0
TARGET_LAG_P99_MS = 10.0
TARGET_SEARCH_P95_MS = 50.0


@dataclass
class Result:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def words(rng: random.Random, vocabulary: list[str], chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < chars:
        word = vocabulary[min(int(rng.paretovariate(1.1)) - 1, len(vocabulary) - 1)]
        out.append(word)
        size += len(word) + 1
    return " ".join(out)[:chars]


def make_vocabulary(rng: random.Random, n: int = 20000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


async def ticker(lags: list[float], stop: asyncio.Event, period: float = 0.001) -> None:
    """Sleeps ``period`` over and over and records how late each wake-up was."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        expected = loop.time() + period
        await asyncio.sleep(period)
        lags.append(max(0.0, loop.time() - expected))


async def lifecycles(path: Path, n: int, concurrency: int, max_batch: int, output: str) -> tuple[float, float]:
    """Lifecycles per second and loop-lag p99 (ms) for ``n`` queued -> running -> done sequences."""
    async with Store(path, max_batch=max_batch) as store:
        counter = iter(range(n))

        async def client() -> None:
            for i in counter:
                rid = await store.record_request(NewRequest(
                    source="discord", prompt=f"prompt number {i}", params={"seed": i, "max_new_tokens": 64},
                    model_name="bench", user_id=i % 50, guild_id=1, channel_id=2,
                ))
                await store.mark_running(rid, seed=i, prompt_tokens=5)
                await store.mark_done(rid, outputs=[output], seed=i, prompt_tokens=5, completion_tokens=[100],
                                      queue_s=0.01, generation_s=0.5)

        lags: list[float] = []
        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(lags, stop))
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        stop.set()
        await tick
    return n / elapsed, percentile(lags, 0.99) * 1000


def populate(path: Path, rows: int, rng: random.Random, vocabulary: list[str]) -> None:
    """Bulk-load finished rows through the real schema and triggers (one transaction, no store)."""
    now = to_text(__import__("datetime").datetime.now(__import__("datetime").timezone.utc))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO requests (source, status, prompt, params, model_name, user_id, guild_id, channel_id, "
        "outputs, completion_tokens, created_at, started_at, finished_at, queue_s, generation_s) "
        "VALUES ('discord', 'done', ?, '{}', 'bench', ?, 1, 2, ?, '[100]', ?, ?, ?, 0.01, ?)",
        ((words(rng, vocabulary, 120), i % 500, dumps([words(rng, vocabulary, OUTPUT_CHARS)]),
          now, now, now, rng.random()) for i in range(rows)),
    )
    conn.execute("COMMIT")
    conn.close()


async def search_latency(store: Store, queries: list[str]) -> list[float]:
    times = []
    for query in queries:
        start = time.perf_counter()
        await store.search(query, limit=20)
        times.append(time.perf_counter() - start)
    return times


def scan_latency(path: Path, queries: list[str], limit: int) -> list[float]:
    """Baseline: the same literal match by LIKE over every row."""
    conn = sqlite3.connect(path)
    times = []
    for query in queries[:limit]:
        start = time.perf_counter()
        conn.execute(
            "SELECT id FROM requests WHERE prompt LIKE ? OR outputs LIKE ? ORDER BY id DESC LIMIT 20",
            (f"%{query}%", f"%{query}%"),
        ).fetchall()
        times.append(time.perf_counter() - start)
    conn.close()
    return times


async def export_rate(store: Store, fmt: str) -> float:
    rows = 0
    start = time.perf_counter()
    async for chunk in store.export(fmt):  # type: ignore[arg-type]
        rows += chunk.count(b"\n")
    return rows / (time.perf_counter() - start)


def raw_select_rate(path: Path) -> float:
    conn = sqlite3.connect(path)
    start = time.perf_counter()
    rows = sum(1 for _ in conn.execute("SELECT * FROM requests ORDER BY id"))
    conn.close()
    return rows / (time.perf_counter() - start)


async def run(args: argparse.Namespace) -> list[Result]:
    rng = random.Random(7)
    vocabulary = make_vocabulary(rng)
    output = words(rng, vocabulary, OUTPUT_CHARS)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        single, single_lag = await lifecycles(folder / "single.db", args.lifecycles, args.concurrency, 1, output)
        grouped, lag = await lifecycles(folder / "grouped.db", args.lifecycles, args.concurrency, 256, output)
        results += [
            Result("lifecycles/s (group commit)", grouped, "1/s", single, f">= {TARGET_LIFECYCLES:.0f}"),
            Result("loop lag p99 (group commit)", lag, "ms", single_lag, f"< {TARGET_LAG_P99_MS:.0f}"),
        ]
        path = folder / "search.db"
        async with Store(path):
            pass
        populate(path, args.rows, rng, vocabulary)
        queries = [vocabulary[rng.randrange(len(vocabulary))] for _ in range(args.queries // 2)]
        queries += [" ".join(vocabulary[rng.randrange(50)] for _ in range(2)) for _ in range(args.queries // 4)]
        queries += ["' OR 1=1--", '"quoted" NEAR(x)', "100% off_", "zz*"] * max(1, args.queries // 16)
        async with Store(path, read_only=True) as store:
            times = await search_latency(store, queries)
            scan = scan_latency(path, queries, limit=10)
            results.append(Result(f"search p95 at {args.rows} rows", percentile(times, 0.95) * 1000, "ms",
                                  statistics.median(scan) * 1000, f"< {TARGET_SEARCH_P95_MS:.0f}"))
            results.append(Result("search p50", percentile(times, 0.5) * 1000, "ms"))
            raw = raw_select_rate(path)
            for fmt in ("jsonl", "csv"):
                results.append(Result(f"export {fmt} rows/s", await export_rate(store, fmt), "1/s", raw))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifecycles", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent clients in the lifecycle test")
    parser.add_argument("--rows", type=int, default=100_000, help="rows for the search and export tests")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps([{**asdict(r), "ratio": r.ratio} for r in results], indent=2))
        return 0
    print(f"{'measure':34} {'value':>12} {'baseline':>12} {'ratio':>7}  target")
    for r in results:
        base = f"{r.baseline:12.1f}" if r.baseline is not None else f"{'':12}"
        ratio = f"{r.ratio:7.2f}" if r.ratio is not None else f"{'':7}"
        print(f"{r.name:34} {r.value:12.1f} {base} {ratio}  {r.target}")
    print("baselines: one transaction per write; LIKE scan of every row (median); bare SELECT * rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
