"""A preallocated KV cache with one slot per running row: joining writes one row, leaving moves at most one."""

from __future__ import annotations

from typing import Any

import torch

MIN_COLUMNS = 64  # the cache grows by doubling from here, so growth is rare and cheap overall


class SlotCache:
    """Keys and values of every layer in ``[slots, kv_heads, columns, head_dim]`` buffers.

    The running rows occupy slots ``0..rows-1`` in batch order, each row's tokens left-aligned
    (token i at column i), so a decode step attends over a view of the buffers with no copy and
    writes each row's new key/value at its own column. A row that leaves is replaced by the last
    row (one row's copy per layer), so the live slots stay contiguous; rows that join are written
    into the slots after the last one. Buffers grow (doubling) when rows or columns run out and
    are freed when the batch empties.

    It stands in for transformers' ``Cache`` in a model's forward: attention layers call
    ``update(keys, values, layer_idx)`` and attend over what it returns, under the 4-D boolean
    mask that ``begin_decode`` gives.
    """

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._shape = (0, 0, 0)  # layers, kv heads, head dim: learnt from the first prefill
        self._dtype = torch.float32
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.lengths: list[int] = []  # tokens each running row holds, in slot order
        self._lengths = torch.zeros(0, dtype=torch.long, device=device)  # the same, on the device
        self._dirty: list[int] = []  # per slot: columns a former row may have left filled
        self._width = 0  # columns the current decode step attends over
        self._write_at = torch.zeros(0, dtype=torch.long, device=device)  # the decode step's column per row

    @property
    def rows(self) -> int:
        return len(self.lengths)

    def capacity(self) -> tuple[int, int]:
        """(slots, columns) currently allocated."""
        return (self.keys[0].shape[0], self.keys[0].shape[2]) if self.keys else (0, 0)

    def _reserve(self, rows: int, columns: int) -> None:
        """Make room for ``rows`` rows of ``columns`` tokens, keeping what the running rows hold."""
        slots, width = self.capacity()
        if rows <= slots and columns <= width:
            return
        new_width = max(width, MIN_COLUMNS)
        while new_width < columns:
            new_width *= 2
        layers, heads, dim = self._shape
        shape = (max(rows, slots), heads, new_width, dim)
        used = max(self.lengths, default=0)
        fresh = [torch.zeros(shape, dtype=self._dtype, device=self._device) for _ in range(2 * layers)]
        for old, new in zip(self.keys + self.values, fresh[: len(self.keys) * 2], strict=True):
            new[: self.rows, :, :used] = old[: self.rows, :, :used]
        self.keys, self.values = fresh[:layers], fresh[layers:]
        self._dirty = [min(d, used) for d in self._dirty] + [0] * (shape[0] - len(self._dirty))

    def release(self) -> None:
        """Forget every row and free the buffers."""
        self.keys, self.values, self._dirty = [], [], []
        self.lengths = []
        self._lengths = torch.zeros(0, dtype=torch.long, device=self._device)

    # -- rows joining and leaving -------------------------------------------------------------

    def admit(self, layers: list[tuple[torch.Tensor, torch.Tensor]], prompt_lengths: list[int]) -> None:
        """Add prefilled rows after the running ones: ``layers`` holds each layer's left-padded prefill
        (keys, values) ``[new rows, kv_heads, width, head_dim]``; row i's real tokens are its last
        ``prompt_lengths[i]`` columns."""
        first = self.rows
        _, heads, width, dim = layers[0][0].shape
        if not self.keys:
            self._shape, self._dtype = (len(layers), heads, dim), layers[0][0].dtype
        self._reserve(first + len(prompt_lengths), max(prompt_lengths) + 1)
        for i, length in enumerate(prompt_lengths):
            self._clear(first + i, length)
        for buffers, new in zip(zip(self.keys, self.values, strict=True), layers, strict=True):
            for buffer, states in zip(buffers, new, strict=True):
                for i, length in enumerate(prompt_lengths):
                    buffer[first + i, :, :length] = states[i, :, width - length:]
        self.lengths = self.lengths + list(prompt_lengths)
        self._sync()

    def drop(self, leaving: set[int]) -> list[int]:
        """Remove the rows in slots ``leaving``; returns ``order``: slot i now holds the row that was in order[i]."""
        rows = self.rows
        keep = rows - len(leaving)
        holes = sorted(s for s in leaving if s < keep)
        movers = [s for s in range(keep, rows) if s not in leaving]
        order = list(range(rows))
        for slot in leaving:
            self._dirty[slot] = max(self._dirty[slot], self.lengths[slot] + 1)
        for hole, source in zip(holes, movers, strict=True):
            self._copy(source, hole)
            order[hole] = source
        order = order[:keep]
        self.lengths = [self.lengths[i] for i in order]
        if not self.lengths:
            self.release()
        else:
            self._sync()
        return order

    def _copy(self, source: int, target: int) -> None:
        length = self.lengths[source]
        for buffer in self.keys + self.values:
            buffer[target, :, :length] = buffer[source, :, :length]
        self._dirty[source] = max(self._dirty[source], length + 1)
        self._clear(target, length)  # what the slot's former row left past the moved row's tokens

    def _clear(self, slot: int, length: int) -> None:
        # Masked columns still enter attention as 0 * value: a former row's NaN there would poison the new row.
        dirty = self._dirty[slot]
        if dirty > length:
            for buffer in self.keys + self.values:
                buffer[slot, :, length:dirty].zero_()
        self._dirty[slot] = length

    def _sync(self) -> None:
        self._lengths = torch.tensor(self.lengths, dtype=torch.long, device=self._device)

    # -- the forward --------------------------------------------------------------------------

    def begin_decode(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepare one decode step of every running row: (position ids [rows, 1], mask [rows, 1, 1, width])."""
        width = max(self.lengths) + 1
        self._reserve(self.rows, width)
        self._width = width
        _, heads, dim = self._shape
        # One scatter per layer writes every row's new key at its own column (an index_put with a row index
        # and a column index measured 100x slower).
        self._write_at = self._lengths[:, None, None, None].expand(self.rows, heads, 1, dim)
        columns = torch.arange(width, device=self._device)
        mask = (columns <= self._lengths[:, None])[:, None, None, :]
        return self._lengths[:, None], mask

    def end_decode(self) -> None:
        """The step succeeded: every row holds one more token."""
        self.lengths = [n + 1 for n in self.lengths]
        self._lengths = self._lengths + 1

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Called by each attention layer: store the new keys/values, return what the layer attends over."""
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[: self.rows].scatter_(2, self._write_at, key_states)
        values[: self.rows].scatter_(2, self._write_at, value_states)
        return keys[: self.rows, :, : self._width], values[: self.rows, :, : self._width]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return max(self.lengths, default=0)
