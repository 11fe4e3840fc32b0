"""Fixtures for the operations tests: a tiny saved model and a settings file that passes every check."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

APP_ID = 112233445566778899


def make_token(app_id: int = APP_ID) -> str:
    """A token with a real bot token's shape: base64(app id) . timestamp . HMAC."""
    first = base64.b64encode(str(app_id).encode()).decode().rstrip("=")
    return f"{first}.GxYz12.{'h' * 38}"



@pytest.fixture
def good_env(tmp_path: Path, tiny_model_dir: Path) -> dict[str, str]:
    """Settings (as the environment) for a setup that should pass: tiny model, data in tmp_path, CPU."""
    return {
        "DISCORD_TOKEN": make_token(),
        "MODEL_NAME": str(tiny_model_dir),
        "DEVICE": "cpu",
        "DATABASE_PATH": str(tmp_path / "data" / "continuebot.db"),
        "MODEL_CACHE_DIR": str(tmp_path / "model-cache"),
    }


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    """An empty, owner-only .env (the settings come from ``good_env`` as the environment)."""
    path = tmp_path / ".env"
    path.write_text("# settings come from the test's environment\n")
    path.chmod(0o600)
    return path
