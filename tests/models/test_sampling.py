"""Batched sampling keeps, for every row, exactly the distribution transformers' own processors give that row."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from models.sampling import BatchSampler, row_settings
from models.types import GenerationParams

VOCAB = 300
ROWS = [  # (temperature, top_k, top_p, repetition_penalty) per row, all in one batch
    (0.7, 50, 0.9, 1.0),
    (1.3, 0, 0.95, 1.2),
    (1.0, 5, 1.0, 1.0),
    (0.3, 0, 0.5, 2.0),
    (1.0, 1, 0.9, 1.0),
    (2.0, 300, 0.999, 1.1),
]


def reference(scores: torch.Tensor, seen: list[int], t: float, k: int, p: float, penalty: float) -> torch.Tensor:
    """One row through transformers' processors, as ``generate(do_sample=True)`` applies them."""
    ids = torch.tensor([seen])
    processors = LogitsProcessorList([RepetitionPenaltyLogitsProcessor(penalty), TemperatureLogitsWarper(t)])
    if k:
        processors.append(TopKLogitsWarper(k))
    if p < 1.0:
        processors.append(TopPLogitsWarper(p))
    return torch.softmax(processors(ids, scores[None].clone()), dim=-1)[0]


@pytest.mark.parametrize("trial", range(5))
def test_each_row_keeps_transformers_distribution_in_a_mixed_batch(trial: int) -> None:
    generator = torch.Generator().manual_seed(trial)
    logits = torch.randn(len(ROWS), VOCAB, generator=generator) * 3
    seen_ids = [random.Random(trial * 10 + i).sample(range(VOCAB), 20) for i in range(len(ROWS))]
    seen = torch.zeros(len(ROWS), VOCAB, dtype=torch.bool)
    for i, ids in enumerate(seen_ids):
        seen[i, ids] = True
    settings = [row_settings(GenerationParams(temperature=t, top_k=k, top_p=p, repetition_penalty=r), 1, 0)
                for t, k, p, r in ROWS]
    sampler = BatchSampler(VOCAB, torch.device("cpu"))
    sampler.set_rows(settings, seen)
    weights, candidates = sampler.distribution(sampler.penalised(logits))
    ours = torch.zeros(len(ROWS), VOCAB).scatter_(1, candidates, weights)
    ours = ours / ours.sum(dim=-1, keepdim=True)
    for i, (t, k, p, r) in enumerate(ROWS):
        expected = reference(logits[i], seen_ids[i], t, k, p, r)
        assert torch.equal(ours[i] > 0, expected > 0), f"row {i} keeps other candidates"
        assert torch.allclose(ours[i], expected, atol=1e-6), f"row {i}"


def test_draws_follow_the_distribution_and_each_row_its_own_stream() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2, 1e-9]] * 2))
    params = GenerationParams(temperature=1.0, top_k=0, top_p=1.0)
    sampler = BatchSampler(4, torch.device("cpu"))
    sampler.set_rows([row_settings(params, 7, 0), row_settings(params, 7, 1)], None)
    counts = torch.zeros(2, 4)
    for _ in range(4000):
        sampler.draw()
        chosen, broken = sampler.choose(logits)
        assert not broken.any()
        counts[torch.arange(2), chosen] += 1
    assert torch.allclose(counts / 4000, torch.tensor([0.5, 0.3, 0.2, 0.0]).expand(2, 4), atol=0.03)
    assert not torch.equal(counts[0], counts[1])  # variants draw from their own streams
