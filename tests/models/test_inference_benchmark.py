"""benchmarks/inference.py at a tiny size: every method in its own process, the ratios and the targets."""

from __future__ import annotations

import json

import pytest

from benchmarks import inference


def test_benchmark_runs_each_method_in_a_fresh_process_and_reports_ratios(tiny_model_dir, tmp_path, capsys):
    argv = ["--model", str(tiny_model_dir), "--cache-dir", str(tmp_path / "cache"), "--requests", "3",
            "--interval", "0.05", "--max-new-tokens", "4", "--threads", "1", "--scenarios", "burst,single", "--json"]

    assert inference.main(argv) == 0

    report = json.loads(capsys.readouterr().out)
    rows = {(r["scenario"], r["method"]): r for r in report["results"]}
    assert set(rows) == {("burst", "seed"), ("burst", "static_batch"), ("burst", "engine"),
                         ("single", "seed"), ("single", "engine")}
    for (scenario, _), row in rows.items():
        expected = 1 if scenario == "single" else 3
        assert row["requests"] == expected and expected <= row["tokens"] <= 4 * expected, row
        assert row["tok_per_s"] > 0
    assert rows[("burst", "engine")]["loop_lag_max_ms"] is not None
    ratios = {(r["scenario"], r["method"]): r for r in report["ratios"]}
    assert ratios[("burst", "engine")]["best_peer"] == "static_batch"
    # Greedy: the engine's texts are the seed's, token for token, in every scenario.
    assert all(r["same_text_as_seed"] for r in report["ratios"])
    assert [t["target"] for t in report["targets"]] == [
        "engine: burst tok/s >= 1.0x the best peer", "engine: burst tok/s >= 7x seed",
        "engine: staggered mean latency <= 0.25x seed", "engine: single request tok/s >= 1.0x seed",
        "engine: loop lag p99 < 10 ms"]
    assert "static_batch" in inference.render(report)


def test_an_unknown_method_is_one_line():
    with pytest.raises(SystemExit, match="unknown method.*warp"):
        inference.main(["--methods", "seed,warp", "--json"])
