"""The inference engine: a fair bounded queue, one worker task, one executor thread that owns the model."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from models.errors import EngineClosed, QueueFull, TooManyPending, WorkerDied
from models.eta import Waiting, estimate_starts
from models.fairqueue import FairQueue
from models.handle import RequestHandle
from models.meter import Meter
from models.model_thread import BackendFactory, ModelThread
from models.params import draw_seed, validate_request
from models.protocol import Backend, Progress, RowSpec, RowStart, RowUpdate, Work
from models.types import (
    Cancelled,
    Delta,
    Done,
    EngineConfig,
    EngineStatus,
    Event,
    Failed,
    GenerationParams,
    GenerationRequest,
    GenerationResult,
    Queued,
    Started,
    auto_batch_size,
)

log = logging.getLogger(__name__)

Batching = Literal["continuous", "static"]

ETA_MIN_CHANGE_S = 2.0  # resend Queued when the ETA moves by more than this (or 25 %)
BURST_MAX_GAPS = 10  # an idle engine gathers a burst for at most this many batch_wait_s gaps


def _is_oom(exc: BaseException) -> bool:
    """CUDA out-of-memory, without importing torch where it is not loaded."""
    return any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__)


def _default_factory(config: EngineConfig, progress: Callable[[str], None]) -> Backend:
    if config.inference_url:  # a remote server generates: nothing here imports torch
        from models.remote import RemoteBackend

        return RemoteBackend(config, progress)
    from models.loader import load_backend  # torch is imported on the inference thread, when first needed

    return load_backend(config, progress)


@dataclass(eq=False)
class _Job:
    """Engine-side state of one request, from submit to its final event."""

    handle: RequestHandle
    params: GenerationParams  # seed resolved
    submitted: float
    timer: asyncio.TimerHandle | None = None
    row_ids: tuple[int, ...] = ()
    started: float | None = None
    prompt_tokens: int = 0
    truncated: bool = False
    texts: list[str] = field(default_factory=list)
    emitted: list[int] = field(default_factory=list)  # characters already sent per variant
    tokens: list[int] = field(default_factory=list)
    rows_left: int = 0
    retried: bool = False
    solo: bool = False  # retried after a failure it shared with others: runs alone, to find the culprit
    announced: bool = False  # Started was sent (not again on a retry)
    last_queued: Queued | None = None

    def __post_init__(self) -> None:
        n = self.params.variants
        self.texts, self.emitted, self.tokens = [""] * n, [0] * n, [0] * n

    @property
    def request(self) -> GenerationRequest:
        return self.handle.request

    @property
    def user_key(self) -> str:
        return self.handle.request.user_key

    def reset_rows(self) -> None:
        """Forget row progress before a retry; ``emitted`` stays so no text is sent twice."""
        n = self.params.variants
        self.row_ids, self.rows_left = (), 0
        self.texts, self.tokens = [""] * n, [0] * n


class _Rows:
    """The running batch as the engine sees it: which backend row serves which job, and what to drop."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity  # rows that may run at once (halved after running out of memory)
        self.live: dict[int, tuple[_Job, int]] = {}  # row id -> (job, variant)
        self.in_backend: set[int] = set()  # rows the backend holds (live, or dropped and not yet removed)
        self._to_remove: set[int] = set()
        self._next = 0

    def __len__(self) -> int:
        return len(self.live)

    def new(self, job: _Job, variant: int) -> int:
        row_id, self._next = self._next, self._next + 1
        self.live[row_id] = (job, variant)
        self.in_backend.add(row_id)
        return row_id

    def jobs(self) -> list[_Job]:
        """Running jobs, in the order they joined."""
        return list(dict.fromkeys(job for job, _ in self.live.values()))

    def forget(self, job: _Job) -> None:
        """``job`` ended: its rows leave the batch at the next iteration."""
        for row_id in job.row_ids:
            if self.live.pop(row_id, None) is not None and row_id in self.in_backend:
                self._to_remove.add(row_id)

    def discard(self, job: _Job) -> None:
        """``job``'s rows never made it into the backend (a failed admission): forget them."""
        for row_id in job.row_ids:
            self.live.pop(row_id, None)
            self.in_backend.discard(row_id)

    def left_backend(self, row_ids: Iterable[int]) -> None:
        self.in_backend.difference_update(row_ids)

    def take_removals(self) -> tuple[int, ...]:
        rows = tuple(sorted(self._to_remove & self.in_backend))
        self._to_remove.clear()
        return rows

    def has_removals(self) -> bool:
        return bool(self._to_remove & self.in_backend)

    def clear(self) -> None:
        """The backend was reset: no row runs any more."""
        self.live.clear()
        self.in_backend.clear()
        self._to_remove.clear()


class Engine:
    """Queue, admission, streaming and fault handling around one ``Backend``.

    Every method is called from the event loop's thread. One worker task owns the backend and
    makes one call into a single executor thread per iteration (``Backend.iterate``: drop rows,
    then admit new ones or decode a step), so the loop never blocks and only that thread ever
    touches the model. Between decode steps the worker admits waiting requests into the running
    batch (iteration-level batching, ``batching="continuous"``); ``"static"`` admits only when
    the batch is empty (for benchmarks).
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        backend_factory: BackendFactory = _default_factory,
        progress: Callable[[str], None] = lambda message: None,
        clock: Callable[[], float] = time.monotonic,
        batching: Batching = "continuous",
    ) -> None:
        self._config = config
        self._thread = ModelThread(backend_factory)
        self._progress = progress
        self._clock = clock
        self._batching = batching
        self._worker: asyncio.Task[None] | None = None
        self._queue: FairQueue[_Job] = FairQueue(key=lambda job: job.user_key)
        self._jobs: dict[RequestHandle, _Job] = {}  # queued and running
        self._pending_per_user: Counter[str] = Counter()
        self._rows = _Rows(config.max_batch_size or 1)  # 0 (auto) is resolved once the device is known
        self._meter = Meter()
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._accepting = False
        self._stopping = False
        self._closed = False
        self._dead: BaseException | None = None
        self._started_at = 0.0

    @property
    def _capacity(self) -> int:
        return self._rows.capacity

    # -- lifetime ---------------------------------------------------------------------------

    @property
    def _backend(self) -> Backend | None:
        return self._thread.backend

    async def __aenter__(self) -> Engine:
        began = self._clock()
        backend = await self._thread.start(self._config, self._progress)
        self._rows.capacity = self._config.max_batch_size or (
            self._config.inference_concurrency if self._config.inference_url else auto_batch_size(backend.device))
        log.info(
            "engine ready: %s on %s (%s), batches of up to %d rows, in %.1f s", backend.model_name,
            backend.device, backend.dtype, self._rows.capacity, self._clock() - began,
        )
        self._started_at = time.time()
        self._accepting = True
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="continuebot-inference-worker")
        self._worker.add_done_callback(self._worker_exited)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def shutdown(self, grace_s: float) -> None:
        """Refuse new requests; fail queued ones now and running ones after ``grace_s``."""
        self._accepting = False
        for job in self._queue.drain():
            self._finish(job, Failed("the bot is shutting down", code="shutdown"))
        if self._jobs and grace_s > 0:
            self._settled.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._settled.wait(), grace_s)
        for job in list(self._jobs.values()):
            self._finish(job, Failed("the bot is shutting down", code="shutdown"))

    async def close(self) -> None:
        """Shut down at once, stop the worker and the executor thread; no thread is left."""
        if self._closed:
            return
        self._closed = True
        await self.shutdown(0)
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            await asyncio.wait([self._worker])
        await self._thread.stop(reset=self._dead is None)  # also waits for a call a dead worker left running

    # -- the public surface -----------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> RequestHandle:
        """Queue ``request``; raises InvalidRequest, QueueFull, TooManyPending, EngineClosed or WorkerDied."""
        if self._dead is not None:
            raise WorkerDied("the inference worker has stopped; restart the bot")
        if not self._accepting:
            raise EngineClosed()
        validate_request(request, self._config.limits)
        if len(self._queue) >= self._config.max_queue_size:
            raise QueueFull(self._config.max_queue_size)
        if self._pending_per_user[request.user_key] >= self._config.max_pending_per_user:
            raise TooManyPending(self._config.max_pending_per_user)
        seed = request.params.seed if request.params.seed is not None else draw_seed()
        handle = RequestHandle(request, seed, self._cancel)
        job = _Job(handle, dataclasses.replace(request.params, seed=seed), self._clock())
        loop = asyncio.get_running_loop()
        job.timer = loop.call_later(self._config.request_timeout_s, self._expire, job)
        self._jobs[handle] = job
        self._pending_per_user[request.user_key] += 1
        self._queue.push(job)
        self._publish_positions()
        self._wake.set()
        log.debug("request %s queued (user %s, seed %d)", request.request_id, request.user_key, seed)
        return handle

    def status(self) -> EngineStatus:
        backend = self._backend
        return EngineStatus(
            model_name=backend.model_name if backend else str(self._config.model_name),
            device=backend.device if backend else self._config.device,
            dtype=backend.dtype if backend else self._config.dtype,
            queue_length=len(self._queue),
            running=len(self._rows),
            tokens_per_s=self._meter.tokens_per_s,
            started_at=self._started_at,
            completed=self._meter.completed,
            batch_size=self._rows.capacity,
        )

    def eta_for_new(self) -> float | None:
        """Seconds until a request submitted now would start (None before any measurement)."""
        probe = Waiting(rows=1, max_steps=1)
        return self._estimates(extra=probe)[-1]

    # -- ending requests (on the loop) ------------------------------------------------------

    def _cancel(self, handle: RequestHandle) -> None:
        job = self._jobs.get(handle)
        if job is not None:
            self._finish(job, Cancelled())

    def _expire(self, job: _Job) -> None:
        limit = self._config.request_timeout_s
        self._finish(job, Failed(f"timed out after {limit:g} s", code="timeout"))

    def _finish(self, job: _Job, event: Event) -> None:
        """Send the final event and drop the job from the queue or the running batch."""
        if self._jobs.pop(job.handle, None) is None:
            return
        self._pending_per_user[job.user_key] -= 1
        if self._pending_per_user[job.user_key] <= 0:
            del self._pending_per_user[job.user_key]
        if job.timer is not None:
            job.timer.cancel()
        was_queued = self._queue.remove(job)
        self._rows.forget(job)
        job.handle._emit(event)
        if isinstance(event, Done):
            self._meter.completed += 1
        log.debug("request %s ended: %s", job.request.request_id, type(event).__name__)
        if was_queued:
            self._publish_positions()
        if not self._jobs:
            self._settled.set()
        self._wake.set()

    def _worker_exited(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if self._stopping and error is None and not task.cancelled():
            return
        self._dead = error or asyncio.CancelledError("the worker task was cancelled")
        self._accepting = False
        log.error("inference worker died; failing every waiting request", exc_info=error)
        self._queue.drain()
        for job in list(self._jobs.values()):
            self._finish(job, Failed("the inference worker stopped unexpectedly", code="worker_died"))

    # -- the worker -------------------------------------------------------------------------

    async def _work(self) -> None:
        while not self._stopping:
            if self._queue and not self._rows:
                await self._gather_burst()
            batch = self._take_batch()
            if batch or self._rows or self._rows.has_removals():
                await self._iterate(batch)
                self._publish_positions()
            elif not self._queue:
                self._wake.clear()
                await self._wake.wait()

    async def _gather_burst(self) -> None:
        """Idle with requests waiting: while more keep arriving (a burst), let them gather into one prefill.

        Returns once no request came for ``batch_wait_s``, the queue fills a batch, or
        ``BURST_MAX_GAPS`` gaps passed. One prefill of N prompts costs far less than N prefills
        one after another, and every request in the burst sees its first words sooner.
        """
        gap = self._config.batch_wait_s
        if gap <= 0:
            await asyncio.sleep(0)  # still let a burst submitted in the same tick share the prefill
            return
        seen = -1
        for _ in range(BURST_MAX_GAPS):
            if len(self._queue) == seen or len(self._queue) >= self._capacity or self._stopping:
                return
            seen = len(self._queue)
            await asyncio.sleep(gap)

    def _take_batch(self) -> list[_Job]:
        """Pop queued jobs (fair order) that fit in the free rows; a wide or solo job runs in an empty batch."""
        running = self._rows.jobs()
        if (self._batching == "static" and running) or any(job.solo for job in running):
            return []
        batch: list[_Job] = []
        free = self._capacity - len(self._rows)
        while (job := self._queue.peek()) is not None:
            if job.solo:
                if not running and not batch:
                    batch.append(self._queue.pop())
                break
            rows = job.params.variants
            if rows > free and (running or batch):
                break
            batch.append(self._queue.pop())
            free -= rows
        return batch

    async def _iterate(self, batch: list[_Job]) -> None:
        """One call into the backend: drop ended rows, then admit ``batch`` or decode one step."""
        assert self._backend is not None
        specs = self._assign_rows(batch)
        if batch:
            self._publish_positions()
        work = Work(remove=self._rows.take_removals(), add=tuple(specs))
        began = self._clock()
        try:
            progress: Progress = await self._thread.call(self._backend.iterate, work)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._rows.left_backend(work.remove)
            # A failed admission leaves the running rows as they were; a failed step, nobody knows.
            await self._recover(exc, batch or self._rows.jobs(), reset=not batch)
            return
        elapsed = self._clock() - began
        self._rows.left_backend(work.remove)
        self._start_jobs(batch, progress.starts)
        tokens = sum(self._apply(update) for update in progress.updates)
        if progress.stepped:
            self._meter.step(elapsed, tokens)
        else:
            self._meter.prefill(elapsed)

    def _assign_rows(self, batch: Sequence[_Job]) -> list[RowSpec]:
        specs: list[RowSpec] = []
        taken = self._clock()
        for job in batch:
            job.started = taken if job.started is None else job.started  # queue time ends here
            job.row_ids = tuple(self._rows.new(job, v) for v in range(job.params.variants))
            job.rows_left = len(job.row_ids)
            specs += [RowSpec(r, job.request.prompt, job.params, v) for v, r in enumerate(job.row_ids)]
        return specs

    def _start_jobs(self, batch: Sequence[_Job], starts: Sequence[RowStart]) -> None:
        by_row = {s.row_id: s for s in starts}
        for job in batch:
            row_starts = [by_row[r] for r in job.row_ids if r in by_row]
            refused = [s.error for s in row_starts if s.error] + (
                ["the model did not take this request"] if len(row_starts) < len(job.row_ids) else []
            )
            self._rows.left_backend(s.row_id for s in row_starts if s.error)
            if job.handle.done:
                continue
            if refused:
                self._finish(job, Failed(refused[0], code="invalid"))
                continue
            job.prompt_tokens = row_starts[0].prompt_tokens
            job.truncated = any(s.truncated for s in row_starts)
            if not job.announced:
                job.announced = True
                job.handle._emit(Started(job.handle.seed, job.prompt_tokens, job.truncated))

    def _apply(self, update: RowUpdate) -> int:
        """Deliver one row's update; returns how many new tokens it brought."""
        if update.finished:
            self._rows.left_backend([update.row_id])
        entry = self._rows.live.get(update.row_id)
        if entry is None:
            return 0  # cancelled or timed out while the iteration ran
        job, variant = entry
        if update.error is not None:
            log.warning("request %s failed alone: %s", job.request.request_id, update.error)
            self._finish(job, Failed(f"generation failed: {update.error}", code="error"))
            return 0
        new_tokens = max(0, update.tokens - job.tokens[variant])
        job.tokens[variant] = update.tokens
        job.texts[variant] += update.text
        text = job.texts[variant]
        if len(text) > job.emitted[variant]:
            job.handle._emit(Delta(variant, text[job.emitted[variant]:]))
            job.emitted[variant] = len(text)
        if update.finished:
            del self._rows.live[update.row_id]
            job.rows_left -= 1
            if job.rows_left == 0:
                self._finish(job, Done(self._result(job)))
        return new_tokens

    def _result(self, job: _Job) -> GenerationResult:
        now = self._clock()
        started = job.started if job.started is not None else now
        return GenerationResult(
            texts=tuple(job.texts),
            seed=job.handle.seed,
            prompt_tokens=job.prompt_tokens,
            completion_tokens=tuple(job.tokens),
            queue_s=started - job.submitted,
            generation_s=now - started,
            prompt_truncated=job.truncated,
        )

    # -- faults -----------------------------------------------------------------------------

    async def _recover(self, exc: Exception, affected: Sequence[_Job], reset: bool) -> None:
        """An iteration failed for every row it touched (``affected``): retry each of them once.

        After a failed step the backend is reset; after a failed admission only the newcomers
        are dropped.
        Out of memory halves the batch. Any other fault shared by several requests retries each
        alone (``solo``), so a request that breaks the batch fails by itself and its batch-mates
        finish as they would have. A retry resumes its stream without repeating text (same seed,
        same tokens); a request that fails again fails.
        """
        oom = _is_oom(exc)
        jobs = [job for job in dict.fromkeys(affected) if not job.handle.done]
        log.error("backend iteration failed for %d request(s)", len(jobs), exc_info=exc)
        assert self._backend is not None
        width = sum(job.params.variants for job in jobs) + (0 if reset else len(self._rows))
        if reset:
            await self._thread.call(self._backend.reset)  # state unknown: start clean; if this fails, the worker dies
            self._rows.clear()
        for job in jobs:
            self._rows.discard(job)
        self._meter.forget_prefill()
        if oom:
            self._rows.capacity = max(1, min(self._rows.capacity, max(width, 1)) // 2)
            log.warning("out of memory with %d rows; batch size now %d", width, self._rows.capacity)
        for job in sorted(jobs, key=lambda j: j.submitted):
            if job.retried:
                reason = ("out of memory; try fewer tokens or variants" if oom
                          else f"generation failed ({type(exc).__name__})")
                self._finish(job, Failed(reason, code="oom" if oom else "error"))
                continue
            job.retried, job.solo = True, not oom and len(jobs) > 1
            job.reset_rows()
            self._queue.push_urgent(job)

    # -- queue positions and ETAs -----------------------------------------------------------

    def _estimates(self, extra: Waiting | None = None) -> list[float | None]:
        order = self._queue.order()
        waiting = [Waiting(j.params.variants, j.params.max_new_tokens) for j in order]
        if extra is not None:
            waiting.append(extra)
        running_left = [
            max(1, job.params.max_new_tokens - job.tokens[variant]) for job, variant in self._rows.live.values()
        ]
        return estimate_starts(running_left, waiting, self._capacity, self._meter.step_s)

    def _publish_positions(self) -> None:
        order = self._queue.order()
        for position, (job, eta) in enumerate(zip(order, self._estimates(), strict=True), start=1):
            if self._queued_changed(job.last_queued, position, eta):
                job.last_queued = Queued(position, None if eta is None else round(eta, 1))
                job.handle._emit(job.last_queued)

    @staticmethod
    def _queued_changed(last: Queued | None, position: int, eta: float | None) -> bool:
        if last is None or last.position != position:
            return True
        if (last.eta_s is None) != (eta is None):
            return True
        if last.eta_s is None or eta is None:
            return False
        return abs(eta - last.eta_s) > max(ETA_MIN_CHANGE_S, 0.25 * last.eta_s)
