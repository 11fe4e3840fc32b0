"""The engine's measurements: step time and throughput (EWMAs) for ETAs and /status, and completions."""

from __future__ import annotations

from dataclasses import dataclass

EWMA_ALPHA = 0.3  # weight of the newest step in the averages


@dataclass
class Meter:
    """Step time and tokens/s, measured over decode steps; prefill time is charged to the next step."""

    step_s: float | None = None
    tokens_per_s: float | None = None
    completed: int = 0
    _unmeasured_s: float = 0.0

    def prefill(self, elapsed: float) -> None:
        """An iteration that only admitted rows: its time belongs to the next step's measurement."""
        self._unmeasured_s += elapsed

    def forget_prefill(self) -> None:
        self._unmeasured_s = 0.0

    def step(self, elapsed: float, tokens: int) -> None:
        """A decode step of ``elapsed`` seconds that produced ``tokens`` tokens."""
        elapsed += self._unmeasured_s
        self._unmeasured_s = 0.0
        if elapsed <= 0:
            return
        rate = tokens / elapsed
        if self.step_s is None or self.tokens_per_s is None:
            self.step_s, self.tokens_per_s = elapsed, rate
            return
        self.step_s += EWMA_ALPHA * (elapsed - self.step_s)
        self.tokens_per_s += EWMA_ALPHA * (rate - self.tokens_per_s)
