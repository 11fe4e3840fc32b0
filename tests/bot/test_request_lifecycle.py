"""One request lifecycle behind both front ends: timeouts are logged 'expired'; no row, no run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.terminal import generate_cli
from bot.terminal.generate_cli import Terminal, generate
from models.types import GenerationParams, GenerationRequest
from storage import Store
from storage.errors import StorageError
from tests.bot.conftest import bot_environ, running_bot, slow_backend
from tests.bot.test_refusals import row_for
from tests.fakediscord import FakeDiscord


class RecordingEngine:
    """The real engine behind the lifecycle, remembering which prompts it was given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.prompts: list[str] = []

    def submit(self, request: GenerationRequest):
        self.prompts.append(request.prompt)
        return self.inner.submit(request)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def __aenter__(self):
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self.inner.__aexit__(*exc)


async def failing_write(*args, **kwargs):
    raise StorageError("write failed: disk I/O error")


async def wait_status(store: Store, request_id: int, status: str, timeout: float = 60):
    for _ in range(int(timeout / 0.05)):
        row = await store.get(request_id)
        if row is not None and row.status == status:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"request #{request_id} never became {status!r} (last: {row and row.status})")


# -- Discord ------------------------------------------------------------------------------------


async def test_discord_timeout_is_logged_expired(fake: FakeDiscord, tiny_model_dir, tmp_path):
    env = bot_environ(fake, tiny_model_dir, tmp_path, REQUEST_TIMEOUT_S="1", MAX_NEW_TOKENS="60")
    async with running_bot(fake, env, step_s=0.2) as h:
        inter = await fake.slash("continue", {"prompt": "A very long wait", "max_tokens": 60})
        await inter.wait_content("timed out", timeout=60)
        row = await wait_status(h.store, (await row_for(h, inter)).id, "expired")
        assert "timed out after 1 s" in row.error


async def test_discord_no_row_no_run(fake: FakeDiscord, tiny_model_dir, tmp_path, monkeypatch):
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path)) as h:
        lifecycle = h.bot.services.jobs.lifecycle
        engine = RecordingEngine(lifecycle.engine)
        monkeypatch.setattr(lifecycle, "engine", engine)
        monkeypatch.setattr(h.store, "record_request", failing_write)
        inter = await fake.slash("continue", {"prompt": "Never logged, never run"})
        await inter.wait_acked()
        await fake.wait_for(lambda: inter.content, 30, "an answer")
        assert "Traceback" not in inter.content
        assert engine.prompts == [], "the engine got a request that has no row"
        assert await h.store.recent(limit=5) == []


# -- terminal -----------------------------------------------------------------------------------


@pytest.fixture
def cli_settings(tmp_path: Path, tiny_model_dir: Path):
    return load_settings(
        {
            "MODEL_NAME": str(tiny_model_dir),
            "DEVICE": "cpu",
            "MODEL_CACHE_DIR": str(tmp_path / "cache"),
            "DATABASE_PATH": str(tmp_path / "log.db"),
            "REQUEST_TIMEOUT_S": "1",
            "MAX_NEW_TOKENS": "60",
        },
        env_file=None,
    )


async def logged(db: Path):
    async with Store(db, read_only=True) as store:
        return await store.recent(limit=5)


async def test_terminal_timeout_is_logged_expired(cli_settings, capsys):
    out = Terminal(quiet=True)
    code = await generate("A very long wait", GenerationParams(max_new_tokens=60), cli_settings, out, slow_backend(0.2))
    err = capsys.readouterr().err
    assert code == generate_cli.EXIT_FAILED
    assert "timed out after 1 s" in err and "logged expired" in err
    [row] = await logged(cli_settings.database_path)
    assert row.status == "expired" and row.source == "cli"


async def test_terminal_no_row_no_run(cli_settings, capsys, monkeypatch):
    from models.engine import Engine

    seen: list[RecordingEngine] = []

    def recording_engine(*args, **kwargs):
        engine = RecordingEngine(Engine(*args, **kwargs))
        seen.append(engine)
        return engine

    monkeypatch.setattr("models.engine.Engine", recording_engine)
    monkeypatch.setattr(Store, "record_request", failing_write)
    code = await generate("Never logged, never run", GenerationParams(max_new_tokens=8), cli_settings, Terminal(quiet=True))
    err = capsys.readouterr().err
    assert code == generate_cli.EXIT_FAILED
    assert err.splitlines()[-1] == "continuebot: write failed: disk I/O error"
    assert seen and seen[0].prompts == [], "the engine got a request that has no row"
