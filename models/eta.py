"""Start-time estimates for queued requests, simulated from measured step times."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Waiting:
    """A queued request as the estimator sees it: rows it needs and steps each row may take."""

    rows: int
    max_steps: int


def estimate_starts(
    running_left: Iterable[int],
    waiting: Sequence[Waiting],
    capacity: int,
    step_s: float | None,
) -> list[float | None]:
    """Seconds until each waiting request starts, in queue order.

    Simulates iteration-level batching: every running row needs ``running_left`` more steps,
    rows leave as they finish, and the next request joins when enough rows are free (a request
    wider than ``capacity`` starts once the batch is empty). Rows that stop early at an end
    token make the real start sooner, so this is an upper bound given ``step_s``. Before any
    step was measured (``step_s`` None) only "starts at once" (0.0) is known; the rest are None.
    """
    finish_steps = list(running_left)  # absolute step at which each busy row frees up
    heapq.heapify(finish_steps)
    now = 0
    out: list[float | None] = []
    for item in waiting:
        need = min(item.rows, capacity)
        while capacity - len(finish_steps) < need:
            now = max(now, heapq.heappop(finish_steps))
        if item.rows > capacity:
            while finish_steps:
                now = max(now, heapq.heappop(finish_steps))
        out.append(now * step_s if step_s is not None else (0.0 if now == 0 else None))
        for _ in range(item.rows):
            heapq.heappush(finish_steps, now + max(1, item.max_steps))
    return out
