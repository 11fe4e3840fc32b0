"""The one thread that owns the model: loading, warm-up and every backend call run there, awaited from the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from models.errors import ModelLoadError
from models.protocol import Backend
from models.types import EngineConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
BackendFactory = Callable[[EngineConfig, Callable[[str], None]], Backend]


class ModelThread:
    """A single-thread executor that owns one ``Backend`` for its whole life.

    On CPU, torch's thread pool belongs to the thread that first runs an op; a second thread
    running torch halves the speed of the first (see docs/engine.md), so the model is created,
    warmed up, used and reset on this thread alone.
    """

    def __init__(self, factory: BackendFactory) -> None:
        self._factory = factory
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._inflight: asyncio.Future[Any] | None = None
        self.backend: Backend | None = None

    async def start(self, config: EngineConfig, progress: Callable[[str], None]) -> Backend:
        """Start the thread and load the model on it (and warm it up if ``config.warmup``)."""
        loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="continuebot-inference"
        )

        def threadsafe_progress(message: str) -> None:  # runs in the model thread
            loop.call_soon_threadsafe(progress, message)

        try:
            backend = await self.call(self._factory, config, threadsafe_progress)
            if config.warmup:
                progress("warming up")
                await self.call(backend.warmup)
        except ModelLoadError:
            self._executor.shutdown(wait=True)
            raise
        except BaseException as exc:
            self._executor.shutdown(wait=True)
            if isinstance(exc, Exception):
                raise ModelLoadError(f"the model failed to start: {type(exc).__name__}: {exc}") from exc
            raise
        self.backend = backend
        return backend

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the model thread without blocking the loop."""
        assert self._executor is not None, "start() first"
        future = asyncio.wrap_future(self._executor.submit(fn, *args))
        self._inflight = future
        return await future

    async def stop(self, reset: bool) -> None:
        """Wait for a call still in flight, reset the backend if asked, and join the thread."""
        if self._inflight is not None:
            await asyncio.wait([self._inflight])
        if self.backend is not None and reset:
            try:
                await self.call(self.backend.reset)
            except Exception:
                log.exception("backend reset failed while closing")
        self.backend = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
