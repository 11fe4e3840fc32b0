"""benchmarks/e2e.py at a tiny size: the real bot through the fake Discord and the baseline, full JSON report."""

from __future__ import annotations

import json

from benchmarks import e2e

ROW_FIELDS = {
    "scenario", "method", "requests", "tokens", "wall_s", "tok_per_s", "mean_latency_s", "p95_latency_s",
    "mean_first_text_s", "p95_first_text_s", "p50_first_text_s", "loop_lag_p99_ms", "loop_lag_max_ms",
    "defer_p99_ms", "overhead_p50_ms", "overhead_p95_ms", "before_engine_p50_ms", "after_engine_p50_ms",
}
RATIO_FIELDS = {"scenario", "method", "tok_per_s_x", "mean_latency_x", "p95_latency_x", "first_text_x"}


def test_benchmark_reports_every_measure_for_both_scenarios(tiny_model_dir, tmp_path, capsys):
    argv = ["--model", str(tiny_model_dir), "--cache-dir", str(tmp_path / "cache"), "--requests", "3",
            "--interval", "0.05", "--max-tokens", "4", "--edit-interval", "0.2", "--threads", "1", "--json"]

    assert e2e.main(argv) == 0

    report = json.loads(capsys.readouterr().out)
    assert {"model", "device", "dtype", "threads", "settings", "results", "ratios", "targets"} <= report.keys()
    rows = {(r["scenario"], r["method"]): r for r in report["results"]}
    assert set(rows) == {(s, m) for s in ("burst", "staggered") for m in ("baseline", "bot")}
    for row in rows.values():
        assert ROW_FIELDS <= row.keys()
        assert row["requests"] == 3, "every request got its final message"
        assert row["mean_latency_s"] > 0 and row["loop_lag_max_ms"] is not None
    for scenario in ("burst", "staggered"):
        bot = rows[(scenario, "bot")]
        assert 0 < bot["defer_p99_ms"] < bot["mean_latency_s"] * 1000, "the defer comes before the result"
        assert bot["overhead_p50_ms"] is not None and bot["overhead_p95_ms"] >= bot["overhead_p50_ms"]
        assert bot["before_engine_p50_ms"] > 0 and bot["after_engine_p50_ms"] > 0, "both sides of the engine cost"
    assert [r["scenario"] for r in report["ratios"]] == ["burst", "staggered"]
    assert all(RATIO_FIELDS <= r.keys() for r in report["ratios"])
    named = " | ".join(t["target"] for t in report["targets"])
    for words in ("burst tok/s", "staggered mean latency", "defer p99", "first text", "overhead median"):
        assert words in named
    assert all(isinstance(t["met"], bool) for t in report["targets"])
    assert "overhead_p50_ms" in e2e.render_report(report), "the table shows the Discord overhead"
