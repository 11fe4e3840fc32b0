"""benchmarks/inference.py at a tiny size: every method, the ratios and the targets in the JSON report."""

from __future__ import annotations

import json

from benchmarks import inference


def test_benchmark_reports_every_method_ratio_and_target(tiny_model_dir, tmp_path, capsys):
    argv = ["--model", str(tiny_model_dir), "--cache-dir", str(tmp_path / "cache"), "--requests", "3",
            "--interval", "0.05", "--max-new-tokens", "4", "--threads", "1",
            "--compare-static", "--compare-generate-batch", "--json"]

    assert inference.main(argv) == 0

    report = json.loads(capsys.readouterr().out)
    rows = {(r["scenario"], r["method"]): r for r in report["results"]}
    assert set(rows) == {(s, m) for s in ("burst", "staggered") for m in ("baseline", "engine", "static")} | {
        ("burst", "generate_batch")}
    for row in rows.values():
        assert row["requests"] == 3 and 3 <= row["tokens"] <= 12, row
        assert row["tok_per_s"] > 0 and row["loop_lag_max_ms"] is not None
    assert {(r["scenario"], r["method"]) for r in report["ratios"]} == set(rows) - {
        ("burst", "baseline"), ("staggered", "baseline")}
    assert [t["target"] for t in report["targets"]] == [
        "burst tok/s >= 8x baseline", "staggered mean latency <= 0.25x baseline", "engine loop lag p99 < 10 ms"]
    assert "generate_batch" in inference.render(report)
