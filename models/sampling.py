"""Per-row token choice: transformers' logits processors plus a row-owned RNG, so batching never changes a row."""

from __future__ import annotations

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
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
    """Chooses the next token for one row; greedy rows choose exactly as ``generate`` would.

    Sampling runs on CPU in float32 with the row's own ``torch.Generator``, so the same
    (seed, variant) gives the same draws whatever else shares the batch. With top_k set,
    the warpers run on the k best candidates only (the same distribution as masking the
    whole vocabulary, about 10x cheaper on a 49k vocabulary).
    """

    def __init__(self, params: GenerationParams, seed: int, variant: int) -> None:
        self.greedy = params.temperature == 0
        self._top_k = params.top_k
        self._penalty = LogitsProcessorList()
        if params.repetition_penalty != 1.0:
            self._penalty.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        self._warpers = LogitsProcessorList()
        if params.temperature not in (0.0, 1.0):
            self._warpers.append(TemperatureLogitsWarper(params.temperature))
        if params.top_p < 1.0:
            self._warpers.append(TopPLogitsWarper(top_p=params.top_p))
        self._generator = torch.Generator(device="cpu")
        self._generator.manual_seed(row_seed(seed, variant))

    def choose(self, scores: torch.Tensor, seen_ids: torch.Tensor) -> int:
        """Next token from float32 CPU ``scores`` [1, vocab], given the row's ids so far [1, n]."""
        # Same order as GenerationMixin: processors (repetition penalty), then warpers.
        scores = self._penalty(seen_ids, scores)
        if self.greedy:
            return int(scores.argmax(dim=-1))
        candidates = None
        if 0 < self._top_k < scores.shape[-1]:
            scores, candidates = scores.topk(self._top_k, dim=-1)
        probs = torch.softmax(self._warpers(seen_ids, scores), dim=-1)
        pick = torch.multinomial(probs, num_samples=1, generator=self._generator)
        return int(pick) if candidates is None else int(candidates[0, int(pick)])
