"""What the engine asks of a backend: one call per iteration, rows in, progress out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from models.types import GenerationParams


@dataclass(frozen=True)
class RowSpec:
    """One sequence to generate: a (request, variant) pair."""

    row_id: int  # unique per (request, variant), assigned by the engine
    prompt: str
    params: GenerationParams  # params.seed is already resolved (never None here)
    variant: int  # 0-based; the row's RNG is seeded from (seed, variant)


@dataclass(frozen=True)
class RowStart:
    """What the backend did with a new row; a row with ``error`` was refused and is not running."""

    row_id: int
    prompt_tokens: int
    truncated: bool
    error: str | None = None


@dataclass(frozen=True)
class RowUpdate:
    """Progress of one row. A finished row (done or failed) has left the batch."""

    row_id: int
    text: str  # newly decoded text since the last update ("" while a multi-byte char is incomplete)
    tokens: int  # completion tokens so far
    finished: bool
    finish_reason: str | None = None  # "eos" | "length" | "error"
    error: str | None = None  # set when this row alone failed; its batch-mates go on


@dataclass(frozen=True)
class Work:
    """One iteration's orders: drop ``remove``, then prefill ``add`` if any, else decode one step."""

    remove: tuple[int, ...] = ()
    add: tuple[RowSpec, ...] = ()


@dataclass(frozen=True)
class Progress:
    """What one iteration did: the new rows' starts, every row's news, and whether a step ran."""

    starts: tuple[RowStart, ...] = ()
    updates: tuple[RowUpdate, ...] = ()
    stepped: bool = False


class Backend(Protocol):
    """A model the engine drives from one thread: the in-process torch model, a fake in tests,
    or a remote server. ``iterate`` raising means the iteration failed for every row it touched
    (the engine then resets); a fault of one row is reported in that row's ``RowUpdate.error``."""

    model_name: str
    device: str
    dtype: str
    max_context: int

    def iterate(self, work: Work) -> Progress:
        """Drop, admit (prefill; the first tokens' text comes back at once) or step; one call per iteration."""
        ...

    def active(self) -> int:
        """Rows running (or finished and not yet reported)."""
        ...

    def reset(self) -> None:
        """Drop every row and free what they held."""
        ...

    def warmup(self) -> None:
        """Run a tiny generation so the first real request is not the slow one."""
        ...
