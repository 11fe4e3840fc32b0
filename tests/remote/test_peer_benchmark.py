"""benchmarks/inference.py's peer method against a real vLLM: the same prompts as concurrent streams."""

from __future__ import annotations

import json

from benchmarks import inference
from tests.remote.conftest import SERVED_NAME, VllmServer


def test_the_peer_is_driven_with_the_same_prompts_and_its_greedy_text_matches_the_seed(
    vllm_server: VllmServer, smollm2_cache_dir, capsys
) -> None:
    argv = ["--cache-dir", str(smollm2_cache_dir), "--requests", "3", "--max-new-tokens", "6",
            "--scenarios", "burst", "--methods", "seed,peer", "--peer-url", vllm_server.url,
            "--peer-model", SERVED_NAME, "--json"]

    assert inference.main(argv) == 0

    report = json.loads(capsys.readouterr().out)
    peer = next(r for r in report["results"] if r["method"] == "peer")
    assert peer["requests"] == 3 and peer["tokens"] == 18 and peer["mean_first_text_s"] is not None
    ratios = {r["method"]: r for r in report["ratios"]}
    assert ratios["peer"]["best_peer"] == "peer" and ratios["seed"]["peer_x"] is not None
    assert ratios["peer"]["same_text_as_seed"] is True  # the server serves the same converted model
