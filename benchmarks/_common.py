"""Helpers shared by the benchmarks: an event-loop lag ticker, percentiles, table and JSON output."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

from models.errors import ModelLoadError


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) with linear interpolation; None for no values."""
    data = sorted(values)
    if not data:
        return None
    rank = (len(data) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)


def mean(values: Iterable[float]) -> float | None:
    data = list(values)
    return sum(data) / len(data) if data else None


class LoopLagTicker:
    """Measures how late the event loop wakes a task that sleeps ``interval_s`` at a time.

    Use ``async with LoopLagTicker() as lag:`` around the work; afterwards ``lag.p99_ms`` and
    ``lag.max_ms`` say how long anything on the loop waited behind blocking work.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.lags_s: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.lags_s.append(max(0.0, loop.time() - expected))

    async def __aenter__(self) -> LoopLagTicker:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    @property
    def p99_ms(self) -> float | None:
        value = percentile(self.lags_s, 99)
        return None if value is None else value * 1000

    @property
    def max_ms(self) -> float | None:
        return max(self.lags_s) * 1000 if self.lags_s else None


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain aligned text table of ``columns`` from each row."""
    cells = [[fmt(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) if cells else len(col) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    numeric = [all(isinstance(row.get(col), (int, float, type(None))) for row in rows) for col in columns]
    lines += ["  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)) for r in cells]
    return "\n".join(lines)


def emit(report: Mapping[str, Any], as_json: bool, text: str, out: TextIO | None = None) -> None:
    """Print ``report`` as JSON, or ``text`` (the human table), to ``out`` (default: the current stdout)."""
    out = out if out is not None else sys.stdout
    if as_json:
        print(json.dumps(report, indent=2, default=str), file=out)
    else:
        print(text, file=out)


def ratio_and_target_lines(report: Mapping[str, Any]) -> list[str]:
    """The ratios-to-baseline table and the targets table that every benchmark report ends with."""
    lines: list[str] = []
    if report["ratios"]:
        lines += ["", "ratios to the baseline (same scenario):",
                  format_table(report["ratios"], ["scenario", "method", "tok_per_s_x", "mean_latency_x",
                                                  "p95_latency_x", "first_text_x"])]
    if report["targets"]:
        lines += ["", format_table(report["targets"], ["target", "measured", "met"])]
    return lines


def run_model_benchmark(
    name: str,
    args: argparse.Namespace,
    main_async: Callable[[argparse.Namespace], Awaitable[dict[str, Any]]],
    render: Callable[[dict[str, Any]], str],
) -> int:
    """Run a benchmark that loads a model and print its report; a model that cannot load is one line, exit 1."""
    try:
        report = asyncio.run(main_async(args))
    except ModelLoadError as exc:
        print(f"{name}: the model could not be loaded: {exc}", file=sys.stderr)
        return 1
    emit(report, args.json, render(report))
    return 0
