"""benchmarks/e2e.py at a tiny size: the real bot through the fake Discord, the engine alone and the seed."""

from __future__ import annotations

import json

from benchmarks import e2e

BOT_FIELDS = {
    "scenario", "method", "requests", "tokens", "wall_s", "tok_per_s", "mean_latency_s", "p95_latency_s",
    "mean_first_text_s", "p95_first_text_s", "p50_first_text_s", "loop_lag_p99_ms", "loop_lag_max_ms",
    "defer_p99_ms", "overhead_p50_ms", "overhead_p95_ms", "before_engine_p50_ms", "after_engine_p50_ms",
}


def test_benchmark_reports_the_bot_beside_the_engine_and_the_seed(tiny_model_dir, tmp_path, capsys):
    argv = ["--model", str(tiny_model_dir), "--cache-dir", str(tmp_path / "cache"), "--requests", "3",
            "--interval", "0.05", "--max-tokens", "4", "--edit-interval", "0.2", "--threads", "1",
            "--scenarios", "burst", "--json"]

    assert e2e.main(argv) == 0

    report = json.loads(capsys.readouterr().out)
    rows = {(r["scenario"], r["method"]): r for r in report["results"]}
    assert set(rows) == {("burst", m) for m in ("seed", "engine", "bot")}
    bot = rows[("burst", "bot")]
    assert BOT_FIELDS <= bot.keys()
    assert bot["requests"] == 3, "every request got its final message"
    assert 0 < bot["defer_p99_ms"] < bot["mean_latency_s"] * 1000, "the defer comes before the result"
    assert bot["overhead_p95_ms"] >= bot["overhead_p50_ms"]
    assert bot["before_engine_p50_ms"] > 0 and bot["after_engine_p50_ms"] > 0, "both sides of the engine cost"
    ratios = {(r["scenario"], r["method"]): r for r in report["ratios"]}
    assert ratios[("burst", "bot")]["same_text_as_seed"] is True, "greedy text through Discord is the seed's"
    named = " | ".join(t["target"] for t in report["targets"])
    for words in ("bot tok/s >= 0.9x the engine alone", "defer p99", "first text", "overhead median"):
        assert words in named
    assert all(isinstance(t["met"], bool) for t in report["targets"])
    assert "overhead_p50_ms" in e2e.render_report(report), "the table shows the Discord overhead"


def test_a_bot_that_cannot_start_fails_the_run_and_says_so(tmp_path, capsys):
    argv = ["--model", str(tmp_path / "no-such-model"), "--cache-dir", str(tmp_path / "cache"), "--requests", "1",
            "--max-tokens", "2", "--scenarios", "single", "--methods", "bot", "--json"]

    assert e2e.main(argv) == 1

    assert "the bot exited early with code 1" in capsys.readouterr().err
