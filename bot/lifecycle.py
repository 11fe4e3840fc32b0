"""One request's life in the log, the same for every front end: row first, then submit; events -> statuses."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bot.errors import RequestRefused
from bot.ops.metrics import Metrics
from models.errors import EngineError
from models.handle import RequestHandle
from models.params import draw_seed
from models.types import Cancelled, Done, Event, Failed, GenerationRequest, GenerationResult, Started
from storage import Store
from storage.types import FinalStatus, NewRequest

log = logging.getLogger(__name__)


class Submits(Protocol):
    """What the lifecycle needs of an engine: take a request, hand back its stream of events."""

    def submit(self, request: GenerationRequest) -> RequestHandle: ...


@dataclass(frozen=True)
class Tracked:
    """A request that has a row and is in the engine."""

    request_id: int
    handle: RequestHandle
    logged: NewRequest  # what the row holds, the seed included


def final_status(event: Failed) -> FinalStatus:
    """The logged status of a failure: a time limit is 'expired', a shutdown 'interrupted'."""
    if event.code == "timeout":
        return "expired"
    if event.code == "shutdown":
        return "interrupted"
    return "failed"


@dataclass
class RequestLifecycle:
    """Records a request before the engine sees it and keeps its row in step with the engine's events.

    Front ends (the Discord jobs, the terminal's ``generate``) only present: they call
    :meth:`submit`, pass each event to :meth:`on_event`, and report what happened after the
    engine finished (:meth:`undelivered`, :meth:`abandon`).
    """

    store: Store
    engine: Submits
    metrics: Metrics | None = None

    async def reject(self, new: NewRequest, reason: str) -> int:
        """Log a request refused before it was recorded (access rules, cooldown); returns its id."""
        request_id = await self.store.record_rejected(new, reason)
        self._observe("rejected")
        return request_id

    async def submit(
        self, new: NewRequest, request: GenerationRequest, explain: Callable[[EngineError], str] = str
    ) -> Tracked:
        """Record the row ('queued', with the seed), then submit; no row, no run.

        When the engine refuses (queue full, invalid...), the row becomes 'rejected' with
        ``explain(error)`` and :class:`RequestRefused` with that reason is raised (from the error).
        """
        seed = request.params.seed if request.params.seed is not None else draw_seed()
        request = dataclasses.replace(request, params=dataclasses.replace(request.params, seed=seed))
        new = dataclasses.replace(new, params={**new.params, "seed": seed})
        request_id = await self.store.record_request(new)
        try:
            handle = self.engine.submit(dataclasses.replace(request, request_id=request_id))
        except EngineError as exc:
            reason = explain(exc)
            await self.store.mark_rejected(request_id, reason)
            self._observe("rejected")
            raise RequestRefused(reason) from exc
        return Tracked(request_id, handle, new)

    async def on_event(self, request_id: int, event: Event, *, cancel_reason: str = "cancelled") -> FinalStatus | None:
        """Store what ``event`` means for the row; returns the final status on the last event, else None."""
        match event:
            case Started(seed=seed, prompt_tokens=prompt_tokens):
                await self.store.mark_running(request_id, seed=seed, prompt_tokens=prompt_tokens)
            case Done(result=result):
                await self._mark_done(request_id, result)
                self._observe("done", result.queue_s, result.generation_s, sum(result.completion_tokens))
                return "done"
            case Failed(reason=reason):
                return await self.end(request_id, final_status(event), reason)
            case Cancelled():
                return await self.end(request_id, "cancelled", cancel_reason)
        return None

    async def end(self, request_id: int, status: FinalStatus, reason: str) -> FinalStatus:
        """Finish an unfinished row as ``status`` (not 'done': that comes with a result)."""
        marks = {
            "failed": self.store.mark_failed,
            "expired": self.store.mark_expired,
            "interrupted": self.store.mark_interrupted,
            "cancelled": self.store.mark_cancelled,
            "rejected": self.store.mark_rejected,
        }
        await marks[status](request_id, reason)
        self._observe(status)
        return status

    async def withhold(self, request_id: int, outputs: list[str], reason: str) -> FinalStatus:
        """A filter rule stopped the output: the row keeps the full text for moderators, logged 'withheld'."""
        await self.store.mark_withheld(request_id, outputs=outputs, reason=reason)
        self._observe("withheld")
        return "withheld"

    async def undelivered(self, request_id: int, reason: str) -> None:
        """A done request whose result never reached its author: logged 'expired', outputs kept."""
        await self.store.mark_undelivered(request_id, reason)

    async def abandon(self, request_id: int, status: FinalStatus, reason: str) -> None:
        """The front end gave up on the request (it crashed or is stopping); never raises but cancellation."""
        try:
            await asyncio.shield(self.end(request_id, status, reason))
        except asyncio.CancelledError:
            raise
        except Exception:  # the last word on a request that is already lost
            log.exception("request %s: could not mark it %s", request_id, status)

    async def _mark_done(self, request_id: int, result: GenerationResult) -> None:
        await self.store.mark_done(
            request_id,
            outputs=list(result.texts),
            seed=result.seed,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=list(result.completion_tokens),
            queue_s=result.queue_s,
            generation_s=result.generation_s,
        )

    def _observe(
        self, status: str, queue_s: float | None = None, generation_s: float | None = None, tokens: int = 0
    ) -> None:
        if self.metrics is not None:
            self.metrics.observe_request(status, queue_s, generation_s, tokens)
