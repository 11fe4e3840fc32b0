"""Fixtures for the storage tests: a store on a real file and a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from storage import NewRequest, Store


class FakeClock:
    """A clock that stands still until the test advances it."""

    def __init__(self, start: datetime = datetime(2025, 1, 1, tzinfo=timezone.utc)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def new_request(prompt: str = "Once upon a time", **overrides: object) -> NewRequest:
    values: dict[str, object] = dict(
        source="discord", prompt=prompt, params={"seed": 1, "max_new_tokens": 16, "variants": 1},
        model_name="tiny", user_id=10, user_name="ada", guild_id=100, channel_id=1000, interaction_id=5,
    )
    values.update(overrides)
    return NewRequest(**values)  # type: ignore[arg-type]


async def finish(store: Store, request_id: int, *outputs: str) -> None:
    await store.mark_running(request_id, seed=1, prompt_tokens=4)
    await store.mark_done(
        request_id, outputs=list(outputs or ("and they lived happily",)), seed=1, prompt_tokens=4,
        completion_tokens=[5] * max(1, len(outputs)), queue_s=0.2, generation_s=1.5,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "continuebot.db"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(db_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    async with Store(db_path, clock=clock) as opened:
        yield opened
