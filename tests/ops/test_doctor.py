"""``continuebot doctor`` passes a good setup and names each broken thing with a fix, never the token."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
import torch

from bot.config import load_settings
from bot.terminal import doctor
from bot.terminal.doctor import CheckResult, check_model_memory, run_checks
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
    assert loaded.status == "OK" and loaded.detail.startswith("loaded and generated in")


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
    assert out.count("Reset Token") == 1  # how to fix it, said once
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
    assert "no such directory" in failed.detail and failed.fix  # the loader's own words


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


def make_database(path: Path, *, backup: bool = False) -> None:
    """A real database created by the store (migrated to the current schema), optionally backed up."""
    from storage import Store

    async def create() -> None:
        async with Store(path) as store:
            if backup:
                await store.backup(path.with_name(f"{path.stem}-backup-20250101-000000.db"))

    path.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(create())


def test_existing_healthy_database_with_a_backup_passes(env_file, good_env) -> None:
    make_database(Path(good_env["DATABASE_PATH"]), backup=True)
    results = {r.check: r for r in run_checks(env_file, good_env)}
    assert results["database schema"].status == "OK"
    assert results["database integrity"].detail.startswith("quick_check ok")
    assert results["database backups"].status == "OK" and "1 found" in results["database backups"].detail


def test_database_from_a_newer_continuebot_fails(env_file, good_env) -> None:
    path = Path(good_env["DATABASE_PATH"])
    make_database(path)
    with sqlite3.connect(path) as conn:  # as a later continuebot's migration would record itself
        (version,) = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', ?)",
            (version + 1, "2099-01-01T00:00:00+00:00"),
        )
        conn.execute(f"PRAGMA user_version = {version + 1}")
    conn.close()
    failed = rows(run_checks(env_file, good_env), "FAIL")["database schema"]
    assert "newer continuebot" in failed.detail and "upgrade" in failed.fix


def test_database_without_backups_warns(env_file, good_env) -> None:
    make_database(Path(good_env["DATABASE_PATH"]))
    results = run_checks(env_file, good_env)
    assert "continuebot logs backup" in rows(results, "WARN")["database backups"].fix
    assert not rows(results, "FAIL")


def test_corrupt_database_fails_the_integrity_check(env_file, good_env) -> None:
    path = Path(good_env["DATABASE_PATH"])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    failed = rows(run_checks(env_file, good_env), "FAIL")
    assert "database integrity" in failed and "restore" in failed["database integrity"].fix


@pytest.mark.parametrize(
    "shards,words",
    [
        ({}, "the count Discord recommends, all in this process"),
        ({"SHARD_COUNT": "4"}, "all 4 in this process"),
        ({"SHARD_COUNT": "3", "SHARD_IDS": "1"},
         "1 of 3 here; run 0,2 in other processes with the same SHARD_COUNT and DATABASE_PATH; "
         "the process with shard 0 syncs the commands"),
    ],
)
def test_doctor_says_which_shards_this_process_runs(env_file, good_env, shards, words) -> None:
    row = {r.check: r for r in run_checks(env_file, {**good_env, **shards})}["shards"]
    assert row.status == "OK" and row.detail == words


def test_a_bad_shard_setting_is_a_failed_row(env_file, good_env) -> None:
    results = run_checks(env_file, {**good_env, "SHARD_IDS": "0"})
    failed = rows(results, "FAIL")
    assert "needs SHARD_COUNT" in failed["setting SHARD_IDS"].detail
