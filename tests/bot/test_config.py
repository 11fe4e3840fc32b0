"""Settings: parsed once, every bad value is one line naming the setting, exit code 2."""

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import check_token, load_settings
from bot.errors import ConfigError, InvalidSettings

GOOD_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789AB"


def test_defaults_without_any_setting():
    settings = load_settings({}, env_file=None)
    assert settings.model_name is None
    assert settings.device == "auto"
    assert settings.max_batch_size == 0  # by device, once the model is loaded
    assert settings.discord_api_base == "https://discord.com/api/v10"
    assert settings.engine_config().pack_weights is True


def test_packed_weights_can_be_turned_off():
    assert load_settings({"PACK_WEIGHTS": "false"}, env_file=None).engine_config().pack_weights is False


def test_env_file_is_read_and_environment_wins(tmp_path):
    env = tmp_path / ".env"
    env.write_text("MAX_BATCH_SIZE=4\nALLOWED_CHANNEL_IDS=1, 2 ,3\nALLOW_DMS=yes\n")
    settings = load_settings({"MAX_BATCH_SIZE": "16", "BATCH_WAIT_MS": "20"}, env_file=env)
    assert settings.max_batch_size == 16
    assert settings.engine_config().batch_wait_s == pytest.approx(0.02)
    assert settings.allowed_channel_ids == (1, 2, 3)
    assert settings.allow_dms is True


@pytest.mark.parametrize(
    "name,value,words",
    [
        ("MAX_BATCH_SIZE", "many", "whole number"),
        ("MAX_BATCH_SIZE", "-1", "from 0"),
        ("MAX_BATCH_SIZE", "257", "to 256"),
        ("DEVICE", "gpu", "auto, cpu, cuda"),
        ("DTYPE", "int8", "one of"),
        ("ALLOWED_CHANNEL_IDS", "general", "numeric Discord ids"),
        ("ALLOW_DMS", "maybe", "true or false"),
        ("PACK_WEIGHTS", "fast", "true or false"),
        ("DISCORD_API_BASE", "discord.com", "URL"),
        ("PROMPT_OVERFLOW", "explode", "truncate, reject"),
        ("LOG_RETENTION_DAYS", "-1", "from 0"),
        ("METRICS_PORT", "70000", "to 65535"),
        ("REQUEST_TIMEOUT_S", "nan", "number"),
        ("BATCH_WAIT_MS", "-5", "from 0 to 1000"),
        ("INFERENCE_URL", "127.0.0.1:8000/v1", "http or https URL"),
        ("INFERENCE_CONCURRENCY", "0", "from 1"),
        ("INFERENCE_TIMEOUT_S", "0.1", "from 1"),
    ],
)
def test_bad_values_name_the_setting(name, value, words):
    with pytest.raises(ConfigError) as info:
        load_settings({name: value}, env_file=None)
    assert info.value.setting == name
    assert words in str(info.value)


def test_default_tokens_cannot_exceed_the_cap():
    with pytest.raises(ConfigError) as info:
        load_settings({"MAX_NEW_TOKENS": "32", "DEFAULT_MAX_NEW_TOKENS": "64"}, env_file=None)
    assert info.value.setting == "DEFAULT_MAX_NEW_TOKENS"


@pytest.mark.parametrize("token", [None, "", "Bot " + GOOD_TOKEN, "not-a-token", "a.b.c"])
def test_bad_tokens_are_refused_without_echoing_them(token):
    with pytest.raises(ConfigError) as info:
        check_token(token)
    assert info.value.setting == "DISCORD_TOKEN"
    if token:
        assert token not in str(info.value)


def test_good_token_shape_passes():
    check_token(GOOD_TOKEN)


def test_cli_prints_one_line_and_exits_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MAX_QUEUE_SIZE": "lots", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "invite", "--client-id", "1"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MAX_QUEUE_SIZE" in lines[0]
    assert "Traceback" not in result.stderr


def test_run_without_token_is_one_line_exit_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DISCORD_TOKEN": "oops"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", ], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "DISCORD_TOKEN" in result.stderr
    assert "oops" not in result.stderr


def test_env_example_loads_and_documents_every_setting():
    import re

    root = Path(__file__).resolve().parents[2]
    example = root / ".env.example"
    settings = load_settings({}, env_file=example)
    assert settings.discord_token is None and settings.max_batch_size == 0
    documented = set(re.findall(r"^([A-Z_]+)=", example.read_text(), re.M))
    read = set(re.findall(r'"([A-Z][A-Z_]{3,})"', (root / "bot" / "config.py").read_text()))
    read -= {"DEBUG", "INFO", "WARNING", "ERROR"}  # log level names, not settings
    assert read <= documented, read - documented


def test_the_engine_defaults_are_the_settings_defaults():
    from models.types import EngineConfig

    assert load_settings({}, env_file=None).engine_config() == EngineConfig()


def test_an_inference_url_points_the_engine_at_the_server_without_showing_the_key():
    settings = load_settings(
        {"INFERENCE_URL": "http://gpu-box:8000/v1/", "INFERENCE_API_KEY": "sk-very-secret", "INFERENCE_CONCURRENCY": "48"},
        env_file=None,
    )
    config = settings.engine_config()
    assert config.inference_url == "http://gpu-box:8000/v1" and config.inference_api_key == "sk-very-secret"
    assert config.max_batch_size == 48  # the requests in flight at the server are the engine's batch
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in repr(config)
    assert load_settings({}, env_file=None).engine_config().inference_url is None  # the in-process model


def test_every_bad_setting_is_reported_in_one_pass():
    from bot.errors import InvalidSettings

    with pytest.raises(InvalidSettings) as info:
        load_settings({"DEVICE": "gpu", "MAX_BATCH_SIZE": "lots", "ALLOW_DMS": "maybe"}, env_file=None)
    assert [e.setting for e in info.value.errors] == ["DEVICE", "MAX_BATCH_SIZE", "ALLOW_DMS"]


def test_cli_names_every_bad_setting(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--env-file", "absent.env", "invite", "--client-id", "1"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MAX_BATCH_SIZE": "lots", "ALLOW_DMS": "maybe"},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and "MAX_BATCH_SIZE" in lines[0] and "ALLOW_DMS" in lines[1]


def test_shards_default_to_discords_count_and_every_shard_here():
    settings = load_settings({}, env_file=None)
    assert settings.shard_count is None and settings.shard_ids is None
    assert settings.runs_shard_zero()


@pytest.mark.parametrize(
    "count,ids,expected,zero",
    [("2", "0", (2, (0,)), True), ("4", " 3, 1 ", (4, (3, 1)), False), ("3", "", (3, None), True)],
)
def test_shards_this_process_runs(count, ids, expected, zero):
    settings = load_settings({"SHARD_COUNT": count, "SHARD_IDS": ids}, env_file=None)
    assert (settings.shard_count, settings.shard_ids) == expected
    assert settings.runs_shard_zero() is zero


@pytest.mark.parametrize(
    "environ,setting,words",
    [
        ({"SHARD_IDS": "0"}, "SHARD_IDS", "needs SHARD_COUNT"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "2"}, "SHARD_IDS", "from 0 to 1 (SHARD_COUNT=2)"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "1,1"}, "SHARD_IDS", "lists a shard twice"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "first"}, "SHARD_IDS", "comma-separated list of shard numbers"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "-1"}, "SHARD_IDS", "comma-separated list of shard numbers"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT", "whole number from 1"),
        ({"SHARD_COUNT": "0", "SHARD_IDS": "0"}, "SHARD_COUNT", "whole number from 1"),
    ],
)
def test_bad_shard_settings_say_what_to_fix(environ, setting, words):
    with pytest.raises(InvalidSettings) as info:
        load_settings(environ, env_file=None)
    assert [e.setting for e in info.value.errors] == [setting], "one line, naming the setting at fault"
    assert words in str(info.value.errors[0])


@pytest.mark.parametrize("command,code", [("doctor", 1), ("run", 2)])
def test_doctor_and_run_show_a_bad_shard_setting_without_a_traceback(tmp_path, command, code):
    (tmp_path / ".env").write_text(f"DISCORD_TOKEN={GOOD_TOKEN}\nSHARD_COUNT=2\nSHARD_IDS=0,2\n")
    cli = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", cli, command], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode == code, output
    assert "SHARD_IDS" in output and "from 0 to 1 (SHARD_COUNT=2)" in output, output
    assert "Traceback" not in output
