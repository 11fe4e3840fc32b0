"""A deterministic in-memory Backend for engine tests: one word per step, failures on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

from models.protocol import Progress, RowSpec, RowStart, RowUpdate, Work


class FakeBackend:
    """Implements the Backend protocol; each step gives every row the word ``w<seed+variant+n>``.

    ``fail_next[kind]`` (kind: add, step, remove) is raised by the next call of that kind;
    ``fail_on_step[n]`` by the n-th step; a prompt in ``poison`` makes every prefill and every
    step it takes part in raise (a request that breaks whatever batch it is in).
    ``gate`` (set by default) is waited on at the start of each step, so a test can hold the
    worker mid-batch. ``calls`` records (kind, row ids) for every call.
    """

    model_name = "fake-model"
    device = "cpu"
    dtype = "float32"
    max_context = 1024

    def __init__(self, step_delay: float = 0.0) -> None:
        self.step_delay = step_delay
        self.rows: dict[int, list] = {}  # row id -> [spec, tokens produced]
        self.fail_next: dict[str, BaseException] = {}
        self.fail_on_step: dict[int, BaseException] = {}  # step number (1-based) -> error
        self.steps = 0
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.refuse: set[str] = set()  # prompts whose rows add() refuses
        self.added_prompts: list[str] = []  # one entry per accepted row, in order
        self.poison: set[str] = set()

    def iterate(self, work: Work) -> Progress:
        if work.remove:
            self.remove(work.remove)
        if work.add:
            return Progress(starts=tuple(self.add(work.add)))
        if not self.rows:
            return Progress()
        return Progress(updates=tuple(self.step()), stepped=True)

    @staticmethod
    def word(spec: RowSpec, n: int) -> str:
        return f"w{(spec.params.seed or 0) + 7 * spec.variant + n} "

    def expected(self, spec_seed: int, variant: int, tokens: int) -> str:
        return "".join(f"w{spec_seed + 7 * variant + n} " for n in range(tokens))

    def _maybe_fail(self, kind: str) -> None:
        exc = self.fail_next.pop(kind, None)
        if exc is not None:
            raise exc

    def add(self, rows: Sequence[RowSpec]) -> list[RowStart]:
        self.calls.append(("add", tuple(r.row_id for r in rows)))
        self._maybe_fail("add")
        if any(spec.prompt in self.poison for spec in rows):
            raise RuntimeError("poisoned prefill")
        starts = []
        for spec in rows:
            if spec.prompt in self.refuse:
                starts.append(RowStart(spec.row_id, 0, False, error="prompt refused"))
                continue
            self.rows[spec.row_id] = [spec, 0]
            self.added_prompts.append(spec.prompt)
            starts.append(RowStart(spec.row_id, len(spec.prompt.split()), False))
        return starts

    def step(self) -> list[RowUpdate]:
        self.gate.wait()
        self.calls.append(("step", tuple(self.rows)))
        time.sleep(self.step_delay)
        self.steps += 1
        self._maybe_fail("step")
        if self.steps in self.fail_on_step:
            raise self.fail_on_step.pop(self.steps)
        if any(spec.prompt in self.poison for spec, _ in self.rows.values()):
            raise RuntimeError("poisoned step")
        updates = []
        for row_id, state in list(self.rows.items()):
            spec, n = state
            state[1] = n + 1
            finished = n + 1 >= spec.params.max_new_tokens
            updates.append(RowUpdate(row_id, self.word(spec, n), n + 1, finished, "length" if finished else None))
            if finished:
                del self.rows[row_id]
        return updates

    def remove(self, row_ids: Iterable[int]) -> None:
        ids = tuple(row_ids)
        self.calls.append(("remove", ids))
        self._maybe_fail("remove")
        for row_id in ids:
            self.rows.pop(row_id, None)

    def active(self) -> int:
        return len(self.rows)

    def reset(self) -> None:
        self.calls.append(("reset", ()))
        self.rows.clear()

    def warmup(self) -> None:
        pass
