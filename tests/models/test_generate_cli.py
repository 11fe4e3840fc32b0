"""``continuebot generate``: streams, prints JSON, logs the request, and fails in one clear line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from storage import Store
from tests.conftest import needs_smollm2

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_env(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings for an in-process run on the tiny model; returns the database path."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith(("DISCORD_", "MODEL_", "DATABASE_", "MAX_", "DEFAULT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MODEL_NAME", str(tiny_model_dir))
    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "log.db"))
    return tmp_path / "log.db"


def logged_row(db: Path, request_id: int):
    async def fetch():
        async with Store(db, read_only=True) as store:
            return await store.get(request_id)

    return asyncio.run(fetch())


def run_cli(*args: str) -> int:
    return main(["--env-file", "absent.env", "generate", *args])


def test_streams_the_text_and_logs_a_done_row(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("Once upon a time", "--max-new-tokens", "12", "--seed", "42", "--temperature", "0")
    out, err = capsys.readouterr()
    assert code == 0
    assert "seed 42" in err and "logged as request #1" in err
    row = logged_row(cli_env, 1)
    assert row.source == "cli" and row.status == "done" and row.seed == 42
    assert row.params["max_new_tokens"] == 12 and row.params["temperature"] == 0
    assert out == row.outputs[0] + "\n"
    assert row.completion_tokens == (12,) or row.completion_tokens[0] <= 12


def test_json_with_variants_is_one_object(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run_cli("Café crème", "--max-new-tokens", "8", "--seed", "7", "--variants", "2", "--json", "-q")
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["seed"] == 7 and data["params"]["variants"] == 2 and len(data["texts"]) == 2
    assert set(data["timings"]) >= {"load_s", "queue_s", "generation_s", "total_s"}
    row = logged_row(cli_env, data["request_id"])
    assert list(row.outputs) == data["texts"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["hi", "--temperature", "9"], "temperature"),
        (["hi", "--variants", "6"], "variants"),
        (["hi", "--max-new-tokens", "0"], "max_new_tokens"),
        (["   "], "prompt"),
    ],
)
def test_a_bad_parameter_is_one_line_and_exit_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code = run_cli(*args)
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not cli_env.exists()  # refused before anything was opened


def test_a_missing_model_is_one_line_and_exit_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODEL_NAME", str(tmp_path / "no-such-model"))
    code = run_cli("hello", "-q")
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("continuebot: cannot load the model:") and "no such directory" in err
    assert err.count("\n") == 1


def test_an_unusable_database_path_is_one_line_and_exit_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("DATABASE_PATH", str(tmp_path / "a-file" / "log.db"))
    code = run_cli("hello", "-q")
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "DATABASE_PATH" in err and err.count("\n") == 1


@pytest.mark.slow
@needs_smollm2
def test_bundled_smollm2_end_to_end_json(tmp_path: Path, smollm2_cache_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "MODEL_", "DATABASE_"))}
    env.update(DATABASE_PATH=str(tmp_path / "log.db"), MODEL_CACHE_DIR=str(smollm2_cache_dir), DEVICE="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "generate", "The lighthouse keeper opened the door and",
         "--max-new-tokens", "12", "--temperature", "0", "--seed", "3", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "SmolLM2-135M-Instruct" and data["seed"] == 3
    assert len(data["texts"]) == 1 and data["texts"][0].strip()
    assert 0 < data["completion_tokens"][0] <= 12 and data["prompt_tokens"] > 0
    row = logged_row(tmp_path / "log.db", data["request_id"])
    assert row.status == "done" and row.source == "cli" and row.model_name == "SmolLM2-135M-Instruct"
    assert row.outputs == tuple(data["texts"]) and row.seed == 3
    assert row.prompt == "The lighthouse keeper opened the door and"


@pytest.mark.slow
@needs_smollm2
def test_ctrl_c_cancels_the_request_and_logs_it_cancelled(tmp_path: Path, smollm2_cache_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "MODEL_", "DATABASE_"))}
    env.update(DATABASE_PATH=str(tmp_path / "log.db"), MODEL_CACHE_DIR=str(smollm2_cache_dir), DEVICE="cpu")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "generate", "Write a very long story about a dragon:",
         "--max-new-tokens", "256", "--temperature", "0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.read1(64)  # the text has started streaming
        assert first
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err and b"cancelled" in err
    row = logged_row(tmp_path / "log.db", 1)
    assert row.status == "cancelled" and row.source == "cli"
