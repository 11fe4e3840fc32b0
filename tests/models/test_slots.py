"""The slot cache: rows join into free slots, leave by moving the last row, and never see a former row's data."""

from __future__ import annotations

import torch

from models.slots import SlotCache

LAYERS, HEADS, DIM = 2, 3, 4


def prefill(lengths: list[int], fill: list[float]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Left-padded prefill keys/values: row i holds ``fill[i]`` in its last ``lengths[i]`` columns."""
    width = max(lengths)
    keys = torch.zeros(len(lengths), HEADS, width, DIM)
    for i, (length, value) in enumerate(zip(lengths, fill, strict=True)):
        keys[i, :, width - length:] = value
    return [(keys.clone(), keys.clone()) for _ in range(LAYERS)]


def row_keys(cache: SlotCache, slot: int) -> torch.Tensor:
    return cache.keys[0][slot, 0, : cache.lengths[slot], 0]


def test_rows_are_left_aligned_and_leaving_moves_only_the_last_row() -> None:
    cache = SlotCache(torch.device("cpu"))
    cache.admit(prefill([2, 3, 4], [1.0, 2.0, 3.0]), [2, 3, 4])
    assert cache.lengths == [2, 3, 4]
    assert row_keys(cache, 1).tolist() == [2.0, 2.0, 2.0]
    order = cache.drop({0})
    assert order == [2, 1] and cache.lengths == [4, 3]  # the last row took the free slot
    assert row_keys(cache, 0).tolist() == [3.0] * 4 and row_keys(cache, 1).tolist() == [2.0] * 3


def test_a_decode_step_writes_each_row_at_its_own_column_under_its_own_mask() -> None:
    cache = SlotCache(torch.device("cpu"))
    cache.admit(prefill([1, 3], [1.0, 2.0]), [1, 3])
    positions, mask = cache.begin_decode()
    assert positions.flatten().tolist() == [1, 3]
    assert mask[:, 0, 0].tolist() == [[True, True, False, False], [True, True, True, True]]
    new = torch.full((2, HEADS, 1, DIM), 9.0)
    for layer in range(LAYERS):
        keys, _ = cache.update(new, new, layer)
        assert keys.shape == (2, HEADS, 4, DIM)  # a view over the columns in use, no copy
    cache.end_decode()
    assert cache.lengths == [2, 4]
    assert row_keys(cache, 0).tolist() == [1.0, 9.0] and row_keys(cache, 1).tolist() == [2.0, 2.0, 2.0, 9.0]


def test_a_row_never_sees_what_a_former_row_left_in_its_slot() -> None:
    nan = float("nan")
    cache = SlotCache(torch.device("cpu"))
    cache.admit(prefill([5, 6, 2], [nan, 1.0, 2.0]), [5, 6, 2])
    cache.drop({0})  # the short last row moves into the slot a NaN row of 5 tokens held
    cache.drop({1})
    cache.admit(prefill([1, 6], [3.0, 4.0]), [1, 6])  # a new short row takes a slot the NaN row's data reached
    cache.begin_decode()  # the 6-token row makes every row attend over 7 columns
    step = torch.zeros(cache.rows, HEADS, 1, DIM)
    keys, values = cache.update(step, step, 0)
    assert not keys.isnan().any() and not values.isnan().any()  # masked columns enter attention as 0 x value
