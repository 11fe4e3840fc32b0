"""benchmarks/filter.py at a small size: both methods per length, and the target in the JSON report."""

from __future__ import annotations

import json

from benchmarks import filter as filter_benchmark


def test_benchmark_reports_each_length_and_the_target(capsys):
    assert filter_benchmark.main(["--rules", "50", "--chars", "200,400", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["output_chars"], r["method"]) for r in report["results"]] == [
        (200, "baseline (1 rule)"), (200, "50 rules"), (400, "baseline (1 rule)"), (400, "50 rules")]
    assert all(r["checks"] == r["output_chars"] // 4 and r["p99_ms"] >= 0 for r in report["results"])
    assert report["regex_rules"] == 2 and report["targets"][0]["target"].startswith("p99 check per edit < 1 ms")
    assert "50 rules" in filter_benchmark.render(report)
