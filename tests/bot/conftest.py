"""Runs the real bot (``bot.runner.serve``) against the fake Discord, with the tiny model and a temp database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.discord_app.app import ContinueBot
from bot.discord_app.jobs import JobOptions
from bot.runner import serve
from models.loader import load_backend
from tests.fakediscord import FakeDiscord, ids


@dataclass
class Harness:
    """A running bot and the fake Discord it talks to."""

    fake: FakeDiscord
    bot: ContinueBot
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[int]

    @property
    def store(self):
        return self.bot.services.store

    @property
    def engine(self):
        return self.bot.services.engine

    async def finish(self, timeout: float = 60) -> int:
        """Stop the bot the way SIGTERM does and return its exit code."""
        self.stop.set()
        return await asyncio.wait_for(self.task, timeout)


def bot_environ(fake: FakeDiscord, tiny_model_dir: Path, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Settings for a test bot: the fake Discord, the tiny model, a temp database."""
    environ = {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "DISCORD_GUILD_IDS": str(ids.GUILD_ID),
        "MODEL_NAME": str(tiny_model_dir),
        "DEVICE": "cpu",
        "MODEL_CACHE_DIR": str(tmp_path / "cache"),
        "DATABASE_PATH": str(tmp_path / "bot.db"),
        "MODERATOR_ROLE_IDS": str(ids.MOD_ROLE_ID),
        "DEFAULT_MAX_NEW_TOKENS": "8",
        "SHUTDOWN_GRACE_S": "5",
    }
    environ.update(overrides)
    return environ


class SlowBackend:
    """The real backend, with every iteration taking at least ``step_s`` (to hold requests in place)."""

    def __init__(self, inner, step_s: float) -> None:
        self.inner = inner
        self.step_s = step_s

    def iterate(self, work):
        time.sleep(self.step_s)
        return self.inner.iterate(work)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def slow_backend(step_s: float):
    """A backend factory for SlowBackend."""

    def factory(config, progress=lambda message: None):
        return SlowBackend(load_backend(config, progress), step_s)

    return factory


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord, environ: dict[str, str], options: JobOptions | None = None, *, step_s: float = 0.0
) -> AsyncIterator[Harness]:
    """Start the bot, wait until it is connected with its commands synced, stop it at the end."""
    settings = load_settings(environ, env_file=None)
    stop = asyncio.Event()
    holder: list[ContinueBot] = []
    task = asyncio.create_task(
        serve(settings, settings.require_token(), stop=stop, job_options=options or JobOptions(edit_interval_s=0.3),
              on_bot=holder.append,
              # with INFERENCE_URL the engine's own default factory picks the remote backend
              backend_factory=slow_backend(step_s) if step_s else (None if settings.inference_url else load_backend))
    )
    try:
        await fake.wait_for(lambda: holder or task.done(), 120, "the bot to start")
        if task.done():
            raise AssertionError(f"the bot exited early with {task.result()}")
        await fake.wait_until_connected(30)
        await fake.wait_for(lambda: holder[0].is_ready(), 30, "the bot to be ready")
        scope = ids.GUILD_ID if settings.discord_guild_ids else None
        await fake.wait_for(lambda: fake.commands.get(scope), 30, "commands to be synced")
        yield Harness(fake, holder[0], settings, stop, task)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def harness(fake, tiny_model_dir, tmp_path) -> AsyncIterator[Harness]:
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path)) as h:
        yield h


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
