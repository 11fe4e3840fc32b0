"""Token choice for a whole batch at once, with each row's own random stream, so batching never changes a row."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from models.types import GenerationParams

# Odd 64-bit constant (golden ratio): spreads variant numbers across the seed space.
_VARIANT_MIX = 0x9E3779B97F4A7C15
_SEED_MASK = 2**64 - 1
# Below this a temperature cannot be sampled in float32 (logits / T overflows): such a row is greedy,
# which is what the distribution converges to as T -> 0.
MIN_SAMPLING_TEMPERATURE = 1e-4
FULL_VOCAB = 0  # top_k 0: every token is a candidate


def row_seed(seed: int, variant: int) -> int:
    """The RNG seed of one variant; variant 0 uses the request seed as is."""
    return (seed + variant * _VARIANT_MIX) & _SEED_MASK


def is_greedy(params: GenerationParams) -> bool:
    """True when the row always takes the likeliest token."""
    return params.temperature < MIN_SAMPLING_TEMPERATURE


@dataclass(frozen=True)
class _Settings:
    """One row's sampling settings and its own random stream."""

    greedy: bool
    temperature: float
    top_k: int
    top_p: float
    penalty: float
    rng: random.Random


def row_settings(params: GenerationParams, seed: int, variant: int) -> _Settings:
    """Sampling settings of one (request, variant) row, its RNG seeded from (seed, variant)."""
    return _Settings(
        greedy=is_greedy(params),
        temperature=max(params.temperature, MIN_SAMPLING_TEMPERATURE),
        top_k=params.top_k,
        top_p=params.top_p,
        penalty=params.repetition_penalty,
        rng=random.Random(row_seed(seed, variant)),
    )


class BatchSampler:
    """Chooses the next token of every row in one pass over the batch's logits, on the logits' device.

    Same order as ``GenerationMixin``: repetition penalty, then temperature, top-k, top-p, then
    the draw. Greedy rows take the argmax after the penalty, exactly as ``generate(do_sample=False)``.
    A sampled row's draw is one uniform number from the row's own ``random.Random`` (inverse-CDF over
    its kept candidates), so a (seed, variant) gives the same text alone or in any batch, on any
    device, without a torch generator per row. The batch's settings are rebuilt only when rows
    join or leave (``set_rows``); a step does no per-row torch work.
    """

    def __init__(self, vocab_size: int, device: torch.device) -> None:
        self._vocab = vocab_size
        self._device = device
        self._rows: list[_Settings] = []
        self._seen: torch.Tensor | None = None  # [rows, vocab] bool: tokens the penalty applies to
        self._greedy = self._temperature = self._top_k = self._top_p = self._penalty = torch.empty(0)
        self._any_sampled = self._any_penalty = False
        self._k = 1
        self._uniforms: torch.Tensor | None = None

    def set_rows(self, rows: Sequence[_Settings], seen: torch.Tensor | None) -> None:
        """The batch's rows in batch order, and their seen-token mask (only needed with a penalty)."""
        self._rows = list(rows)
        dev = self._device
        self._greedy = torch.tensor([r.greedy for r in rows], device=dev)
        self._temperature = torch.tensor([[r.temperature] for r in rows], device=dev)
        self._top_p = torch.tensor([[r.top_p] for r in rows], device=dev)
        self._penalty = torch.tensor([[r.penalty] for r in rows], device=dev)
        sampled = [r for r in rows if not r.greedy]
        self._any_sampled = bool(sampled)
        self._any_penalty = any(r.penalty != 1.0 for r in rows)
        ks = [r.top_k if 0 < r.top_k < self._vocab else self._vocab for r in sampled]
        self._k = max(ks, default=1)
        self._top_k = torch.tensor([[r.top_k if 0 < r.top_k < self._vocab else self._vocab] for r in rows], device=dev)
        self._seen = seen if self._any_penalty else None

    def draw(self) -> None:
        """Take this step's uniform number of every sampled row from its own stream.

        Called before the forward is launched, so on a GPU the copy to the device does not wait for it.
        """
        if self._any_sampled:
            values = [r.rng.random() for r in self._rows]
            self._uniforms = torch.tensor(values, dtype=torch.float32).to(self._device, non_blocking=True)

    def choose(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next token per row from ``logits`` [rows, vocab] (after ``draw``); also a [rows] bool of unusable rows."""
        scores = self.penalised(logits)
        chosen = scores.argmax(dim=-1)
        broken = scores.isnan().any(dim=-1)
        if self._any_sampled:
            drawn, bad = self._draw(scores)
            chosen = torch.where(self._greedy, chosen, drawn)
            broken |= bad & ~self._greedy
        return chosen, broken

    def penalised(self, logits: torch.Tensor) -> torch.Tensor:
        """float32 scores after each row's repetition penalty (RepetitionPenaltyLogitsProcessor's rule)."""
        scores = logits.float()
        if self._seen is not None:
            penalised = torch.where(scores < 0, scores * self._penalty, scores / self._penalty)
            scores = torch.where(self._seen, penalised, scores)
        return scores

    def distribution(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's kept candidates, best first, and their weights (not yet normalised after top-p):
        temperature, then top-k, then top-p, as transformers' warpers do with one row's settings."""
        values, candidates = scores.topk(self._k, dim=-1)  # sorted, best first
        rank = torch.arange(self._k, device=scores.device)
        values = values / self._temperature
        values = values.masked_fill(rank >= self._top_k, float("-inf"))
        probs = torch.softmax(values, dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the better candidates
        # TopPLogitsWarper keeps a token unless the mass above it already reaches top_p (the best always stays).
        return probs.masked_fill((before >= self._top_p) & (rank > 0), 0.0), candidates

    def _draw(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs, candidates = self.distribution(scores)
        cumulative = probs.cumsum(dim=-1)
        assert self._uniforms is not None, "draw() comes before choose()"
        target = self._uniforms[:, None] * cumulative[:, -1:]
        index = (cumulative <= target).sum(dim=-1).clamp(max=self._k - 1)
        bad = ~torch.isfinite(cumulative[:, -1]) | (cumulative[:, -1] <= 0)
        return candidates.gather(1, index[:, None]).squeeze(1), bad
