"""``continuebot doctor`` passes a good setup and names each broken thing with a fix, never the token."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch

from bot import doctor
from bot.config import load_settings
from bot.doctor import CheckResult, check_model_memory, run_checks
from tests.ops.conftest import make_token


def rows(results: list[CheckResult], status: str) -> dict[str, CheckResult]:
    return {r.check: r for r in results if r.status == status}


def run_cli(capsys, env_file: Path, env: dict[str, str], monkeypatch, *argv: str) -> tuple[int, str]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    parser = argparse.ArgumentParser()
    parser.add_argument("--env-file", type=Path)
    doctor.register(parser.add_subparsers())
    args = parser.parse_args(["--env-file", str(env_file), "doctor", *argv])
    assert args.needs_settings is False  # the dispatcher must not stop on a bad .env before doctor runs
    code = args.run(args, None)
    out, err = capsys.readouterr()
    return code, out + err


def test_good_setup_passes_with_exit_code_0(capsys, env_file, good_env, monkeypatch) -> None:
    code, out = run_cli(capsys, env_file, good_env, monkeypatch)
    assert code == 0, out
    for check in ("settings", "DISCORD_TOKEN", "device", "model", "model memory", "database"):
        assert f"\n{check} " in out or out.startswith(check)
    assert "FAIL" not in out
    assert good_env["DISCORD_TOKEN"] not in out


def test_load_option_really_loads_the_model(env_file, good_env) -> None:
    results = run_checks(env_file, good_env, load_model=True)
    loaded = {r.check: r for r in results}["model load"]
    assert loaded.status == "OK" and loaded.detail.startswith("loaded in")


@pytest.mark.parametrize(
    "token",
    ["not-a-token", "Bot " + make_token(), ""],
    ids=["bad shape", "Bot prefix", "missing"],
)
def test_bad_token_fails_without_showing_it(capsys, env_file, good_env, monkeypatch, token) -> None:
    code, out = run_cli(capsys, env_file, {**good_env, "DISCORD_TOKEN": token}, monkeypatch)
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("DISCORD_TOKEN"))
    assert "FAIL" in line
    assert "Reset Token" in out  # how to fix it
    if token:
        assert token not in out


def test_every_invalid_setting_gets_its_own_row(env_file, good_env) -> None:
    env = {**good_env, "DEVICE": "gpu", "MAX_BATCH_SIZE": "lots", "ALLOW_DMS": "maybe", "DISCORD_TOKEN": "x"}
    results = run_checks(env_file, env)
    failed = rows(results, "FAIL")
    assert {"setting DEVICE", "setting MAX_BATCH_SIZE", "setting ALLOW_DMS", "DISCORD_TOKEN"} <= set(failed)
    assert "'lots'" in failed["setting MAX_BATCH_SIZE"].detail
    assert all(r.fix for r in failed.values())


def test_database_in_a_folder_that_is_a_file_fails(env_file, good_env, tmp_path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    results = run_checks(env_file, {**good_env, "DATABASE_PATH": str(blocker / "continuebot.db")})
    failed = rows(results, "FAIL")["database"]
    assert "is a file, not a directory" in failed.detail and "DATABASE_PATH" in failed.fix


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere; the permission case needs a normal user")
def test_database_in_a_read_only_folder_fails(env_file, good_env, tmp_path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        results = run_checks(env_file, {**good_env, "DATABASE_PATH": str(folder / "continuebot.db")})
    finally:
        folder.chmod(0o700)
    assert "cannot create files" in rows(results, "FAIL")["database"].detail


def test_missing_model_directory_fails(env_file, good_env, tmp_path) -> None:
    results = run_checks(env_file, {**good_env, "MODEL_NAME": str(tmp_path / "no-such-model")})
    failed = rows(results, "FAIL")["model"]
    assert "does not exist" in failed.detail and failed.fix


def test_directory_without_a_model_fails(env_file, good_env, tmp_path) -> None:
    (tmp_path / "empty-model").mkdir()
    results = run_checks(env_file, {**good_env, "MODEL_NAME": str(tmp_path / "empty-model")})
    assert "no config.json" in rows(results, "FAIL")["model"].detail


def test_model_larger_than_free_memory_fails(good_env) -> None:
    settings = load_settings(good_env, env_file=None)
    result = check_model_memory(settings, params=10**13)  # 10 T parameters fit nowhere
    assert result.status == "FAIL" and "smaller MODEL_NAME" in result.fix


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_for_on_a_machine_without_it_fails(env_file, good_env) -> None:
    results = run_checks(env_file, {**good_env, "DEVICE": "cuda"})
    assert "DEVICE=cuda" in rows(results, "FAIL")["device"].detail


def test_missing_env_file_and_world_readable_env_file_warn(tmp_path, good_env) -> None:
    missing = run_checks(tmp_path / "absent.env", good_env)
    assert "cp .env.example .env" in rows(missing, "WARN")[".env"].fix
    loose = tmp_path / "loose.env"
    loose.write_text("")
    loose.chmod(0o644)
    assert "chmod 600" in rows(run_checks(loose, good_env), "WARN")[".env"].fix


def test_table_shows_a_fix_under_each_problem() -> None:
    table = doctor.format_table([
        CheckResult("settings", "OK", "every setting is valid"),
        CheckResult("model", "FAIL", "MODEL_NAME directory /x does not exist", "point MODEL_NAME at a directory"),
    ])
    lines = table.splitlines()
    assert lines[2].startswith("model") and "FAIL" in lines[2]
    assert lines[3].strip() == "fix: point MODEL_NAME at a directory"
    assert lines[-1] == "1 failed, 0 warning(s)."
