"""A submitted request as its caller sees it: an async iterator of events, plus cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from models.types import FINAL_EVENTS, Event, GenerationRequest


class RequestHandle:
    """Events of one request: ``Queued* -> Started -> Delta* -> Done | Failed | Cancelled``.

    Created by ``Engine.submit``; use it from the event loop's thread only. The engine pushes
    events with ``_emit``; once a final event is pushed, later pushes are ignored, so a late
    update from the worker can never follow ``Cancelled`` or ``Failed``.
    """

    def __init__(
        self,
        request: GenerationRequest,
        seed: int,
        on_cancel: Callable[["RequestHandle"], None],
    ) -> None:
        self.request = request
        self.seed = seed
        self.final: Event | None = None  # the last event, once there is one
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._on_cancel = on_cancel

    @property
    def done(self) -> bool:
        """True once the request has ended (the final event may not be consumed yet)."""
        return self.final is not None

    def cancel(self) -> None:
        """Queued: leaves at once. Running: stops at the next step. Ended: nothing happens."""
        if not self.done:
            self._on_cancel(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, FINAL_EVENTS):
                return

    async def wait(self) -> Event:
        """Consume the remaining events and return the final one."""
        last: Event | None = None
        async for event in self:
            last = event
        assert last is not None
        return last

    def _emit(self, event: Event) -> bool:
        """Queue ``event`` for the caller; False (and dropped) if the request already ended."""
        if self.final is not None:
            return False
        if isinstance(event, FINAL_EVENTS):
            self.final = event
        self._events.put_nowait(event)
        return True
