"""benchmarks/e2e.py --inference-url against a real vLLM: the bot served by it beside the server driven directly."""

from __future__ import annotations

import json

import pytest

from benchmarks import e2e
from tests.remote.conftest import SERVED_NAME, VllmServer

pytestmark = pytest.mark.timeout(600)


def test_the_bot_is_compared_with_the_same_server_driven_directly(
    vllm_server: VllmServer, smollm2_cache_dir, capsys
) -> None:
    argv = ["--inference-url", vllm_server.url, "--inference-model", SERVED_NAME, "--cache-dir",
            str(smollm2_cache_dir), "--requests", "3", "--max-tokens", "4", "--edit-interval", "0.2", "--json"]

    assert e2e.main(argv) == 0

    report = json.loads(capsys.readouterr().out)
    rows = {(r["scenario"], r["method"]): r for r in report["results"]}
    assert set(rows) == {("burst", "direct"), ("burst", "bot")}  # the burst, both sides, by default
    bot, direct = rows[("burst", "bot")], rows[("burst", "direct")]
    assert bot["requests"] == direct["requests"] == 3 and bot["tokens"] == direct["tokens"] == 12
    assert bot["same_text_as_direct"] is True, "greedy text through the bot is the server's own"
    assert bot["x_direct"] == pytest.approx(bot["tok_per_s"] / direct["tok_per_s"])
    assert bot["vs_direct_p50_ms"] is not None and bot["overhead_p50_ms"] is not None
    named = " | ".join(t["target"] for t in report["targets"])
    assert "bot tok/s >= 0.9x the server driven directly" in named and "overhead median" in named
    assert "vs_direct_p50_ms" in e2e.render_report(report)
