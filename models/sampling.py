"""Per-row token choice: transformers' logits processors plus a row-owned RNG, so batching never changes a row."""

from __future__ import annotations

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from models.types import GenerationParams

# Odd 64-bit constant (golden ratio): spreads variant numbers across the seed space.
_VARIANT_MIX = 0x9E3779B97F4A7C15
_SEED_MASK = 2**64 - 1


def row_seed(seed: int, variant: int) -> int:
    """The RNG seed of one variant; variant 0 uses the request seed as is."""
    return (seed + variant * _VARIANT_MIX) & _SEED_MASK


class RowSampler:
    """Chooses the next token for one row, exactly as ``generate`` would for that row alone.

    Sampling runs on CPU in float32 with the row's own ``torch.Generator``, so the same
    (seed, variant) gives the same draws whatever else shares the batch.
    """

    def __init__(self, params: GenerationParams, seed: int, variant: int) -> None:
        self.greedy = params.temperature == 0
        self._processors = self._build(params)
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(row_seed(seed, variant))

    def _build(self, params: GenerationParams) -> LogitsProcessorList:
        # Same order as GenerationMixin: processors first, then the sampling warpers.
        steps = LogitsProcessorList()
        if params.repetition_penalty != 1.0:
            steps.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        if self.greedy:
            return steps
        if params.temperature != 1.0:
            steps.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            steps.append(TopKLogitsWarper(top_k=params.top_k))
        if params.top_p < 1.0:
            steps.append(TopPLogitsWarper(top_p=params.top_p))
        return steps

    def choose(self, scores: torch.Tensor, seen_ids: torch.Tensor) -> int:
        """Next token from float32 CPU ``scores`` [1, vocab], given the row's ids so far [1, n]."""
        scores = self._processors(seen_ids, scores)
        if self.greedy:
            return int(scores.argmax(dim=-1))
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, num_samples=1, generator=self._generator))
