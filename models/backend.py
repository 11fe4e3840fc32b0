"""The synchronous model side of the engine: a KV-cached decode loop that rows join and leave at any step."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from models.detokenize import IncrementalDecoder
from models.sampling import RowSampler
from models.types import GenerationParams

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 2048  # when the config names no maximum length


@dataclass(frozen=True)
class RowSpec:
    """One sequence to generate: a (request, variant) pair."""

    row_id: int  # unique per (request, variant), assigned by the engine
    prompt: str
    params: GenerationParams  # params.seed is already resolved (never None here)
    variant: int  # 0-based; the row's RNG is seeded from (seed, variant)


@dataclass(frozen=True)
class RowStart:
    """What ``add`` did with a row; a row with ``error`` was refused and is not in the batch."""

    row_id: int
    prompt_tokens: int
    truncated: bool
    error: str | None = None


@dataclass(frozen=True)
class RowUpdate:
    """Progress of one row after a step."""

    row_id: int
    text: str  # newly decoded text since the last update ("" while a multi-byte char is incomplete)
    tokens: int  # completion tokens so far
    finished: bool
    finish_reason: str | None = None  # "eos" | "length"


@dataclass(frozen=True)
class ThreadPlan:
    """Torch threads for decode steps (a few tokens: leave a core to the event loop) and for prefill
    (many prompt tokens at once: compute-bound, gains from every core)."""

    decode: int
    prefill: int


@dataclass
class _Row:
    """Mutable decode state of one row."""

    spec: RowSpec
    sampler: RowSampler
    decoder: IncrementalDecoder
    seen: list[int]  # prompt + generated ids (the repetition penalty looks at all of them)
    generated: int = 0
    pending: list[str] = field(default_factory=list)  # text not yet reported
    finish_reason: str | None = None

    @property
    def last_token(self) -> int:
        return self.seen[-1]


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """Zero-pad ``tensor`` on the left of ``dim`` up to ``length``."""
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - (dim % tensor.dim())) + [missing, 0]
    return F.pad(tensor, pad)


class Backend:
    """Owns the model; every method must be called from the same single thread.

    The running batch is a KV cache, a [rows, columns] attention mask (0 = padding) and
    one not-yet-fed token per row. New rows are prefilled on their own, then their cache
    is left-padded or the batch's is, and the two are concatenated on the batch dim.
    Finished or removed rows are dropped with an index select; padding columns every row
    has are trimmed, so a long-lived batch does not grow without bound.
    """

    def __init__(
        self, model: Any, tokenizer: Any, model_name: str, prompt_overflow: str = "truncate",
        threads: ThreadPlan | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.prompt_overflow = prompt_overflow
        self.threads = threads  # None: leave torch's thread count alone
        first = next(model.parameters())
        self._device = first.device
        self.device = str(first.device)
        self.dtype = str(first.dtype).removeprefix("torch.")
        self.max_context = self._context_length(model.config)
        self.eos_ids = self._eos_ids(model, tokenizer)  # a row ends when it picks one of these
        # transformers 5.2x renamed the forward argument; the cache object is updated in place either way.
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._rows: list[_Row] = []  # rows in the cache, in batch order
        self._finished_early: list[_Row] = []  # finished at prefill, never entered the cache
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None

    @staticmethod
    def _context_length(config: Any) -> int:
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return DEFAULT_CONTEXT

    @staticmethod
    def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
        ids: set[int] = set()
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        for value in (gen_eos, model.config.eos_token_id, tokenizer.eos_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(v for v in value if isinstance(v, int))
        return frozenset(ids)

    # ----- public API -------------------------------------------------------------

    def active(self) -> int:
        """Rows still to report as finished (in the batch, or finished at prefill)."""
        return len(self._rows) + len(self._finished_early)

    def add(self, rows: Sequence[RowSpec]) -> list[RowStart]:
        """Tokenize and prefill ``rows``; accepted rows join the running batch.

        If this raises, the rows already running are untouched (the newcomers are not added).
        """
        starts: list[RowStart] = []
        accepted: list[tuple[RowSpec, list[int]]] = []
        for spec in rows:
            ids, start = self._tokenize(spec)
            starts.append(start)
            if start.error is None:
                accepted.append((spec, ids))
        if accepted:
            with torch.inference_mode(), self._prefill_threads():
                self._prefill(accepted)
        return starts

    def step(self) -> list[RowUpdate]:
        """One decode step for every row; returns an update per row, finished rows leave.

        If this raises, the batch is in an unknown state: call ``reset()``.
        """
        reports = self._finished_early
        self._finished_early = []
        if self._rows:
            with torch.inference_mode():
                self._decode()
            reports = reports + self._rows
            self._drop([row for row in self._rows if row.finish_reason is not None])
        return [self._report(row) for row in reports]

    def take_text(self) -> list[RowUpdate]:
        """Text chosen at prefill, reported now rather than with the next step (first text sooner)."""
        return [self._report(row) for row in self._rows if row.pending]

    def remove(self, row_ids: Iterable[int]) -> None:
        """Cancel rows now; the other rows go on untouched."""
        gone = set(row_ids)
        self._finished_early = [row for row in self._finished_early if row.spec.row_id not in gone]
        self._drop([row for row in self._rows if row.spec.row_id in gone])

    def reset(self) -> None:
        """Drop every row and free the cache (after an error)."""
        self._rows, self._finished_early = [], []
        self._cache, self._mask = None, None
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def warmup(self) -> None:
        """Run one tiny greedy generation so the first real request is not the slow one."""
        params = GenerationParams(max_new_tokens=2, temperature=0.0, seed=0)
        self.add([RowSpec(row_id=-1, prompt="Hello", params=params, variant=0)])
        while self.active():
            self.step()
        self.reset()

    # ----- adding rows ------------------------------------------------------------

    @contextmanager
    def _prefill_threads(self) -> Iterator[None]:
        plan = self.threads
        if plan is None or plan.prefill == plan.decode or self._device.type != "cpu":
            yield
            return
        torch.set_num_threads(plan.prefill)
        try:
            yield
        finally:
            torch.set_num_threads(plan.decode)

    def _tokenize(self, spec: RowSpec) -> tuple[list[int], RowStart]:
        ids = list(self.tokenizer(spec.prompt)["input_ids"])
        if not ids:
            if self.tokenizer.bos_token_id is None:
                return ids, RowStart(spec.row_id, 0, False, "the prompt is empty")
            ids = [self.tokenizer.bos_token_id]
        room = self.max_context - spec.params.max_new_tokens
        if room < 1:
            error = (f"max_new_tokens={spec.params.max_new_tokens} leaves no room for a prompt "
                     f"in this model's context of {self.max_context} tokens")
            return ids, RowStart(spec.row_id, len(ids), False, error)
        if len(ids) <= room:
            return ids, RowStart(spec.row_id, len(ids), False)
        if self.prompt_overflow == "reject":
            error = (f"the prompt is {len(ids)} tokens; with max_new_tokens={spec.params.max_new_tokens} "
                     f"this model takes at most {room}")
            return ids, RowStart(spec.row_id, len(ids), False, error)
        return ids[-room:], RowStart(spec.row_id, room, True)

    def _prefill(self, accepted: list[tuple[RowSpec, list[int]]]) -> None:
        width = max(len(ids) for _, ids in accepted)
        input_ids = torch.zeros((len(accepted), width), dtype=torch.long)
        mask = torch.zeros((len(accepted), width), dtype=torch.long)
        for i, (_, ids) in enumerate(accepted):
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            mask[i, width - len(ids):] = 1
        input_ids, mask = input_ids.to(self._device), mask.to(self._device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **{self._cache_arg: cache})
        scores = out.logits[:, -1].to(dtype=torch.float32, device="cpu")
        rows = [self._new_row(spec, ids) for spec, ids in accepted]
        for i, row in enumerate(rows):
            self._advance(row, scores[i : i + 1])
        keep = [i for i, row in enumerate(rows) if row.finish_reason is None]
        self._finished_early += [row for row in rows if row.finish_reason is not None]
        if keep:
            self._merge([rows[i] for i in keep], self._select(cache, keep), mask[keep])

    def _new_row(self, spec: RowSpec, ids: list[int]) -> _Row:
        assert spec.params.seed is not None, "the engine resolves the seed before add()"
        return _Row(spec=spec, sampler=RowSampler(spec.params, spec.params.seed, spec.variant),
                    decoder=IncrementalDecoder(self.tokenizer, ids), seen=list(ids))

    def _select(self, cache: DynamicCache, keep: list[int]) -> DynamicCache:
        if len(keep) < len(cache.layers[0].keys):
            cache.batch_select_indices(torch.tensor(keep, device=self._device))
        return cache

    def _merge(self, rows: list[_Row], cache: DynamicCache, mask: torch.Tensor) -> None:
        if self._cache is None or self._mask is None:
            self._rows, self._cache, self._mask = rows, cache, mask
            return
        width = max(self._mask.shape[1], mask.shape[1])
        # Build everything first: if memory runs out half-way, the running batch is still intact.
        merged = [
            (torch.cat([_left_pad(mine.keys, width, -2), _left_pad(theirs.keys, width, -2)]),
             torch.cat([_left_pad(mine.values, width, -2), _left_pad(theirs.values, width, -2)]))
            for mine, theirs in zip(self._cache.layers, cache.layers)
        ]
        merged_mask = torch.cat([_left_pad(self._mask, width, -1), _left_pad(mask, width, -1)])
        for layer, (keys, values) in zip(self._cache.layers, merged):
            layer.keys, layer.values = keys, values
        self._mask = merged_mask
        self._rows = self._rows + rows

    # ----- decoding ---------------------------------------------------------------

    def _decode(self) -> None:
        assert self._cache is not None and self._mask is not None
        tokens = torch.tensor([[row.last_token] for row in self._rows], device=self._device)
        positions = self._mask.sum(-1, keepdim=True)
        mask = F.pad(self._mask, (0, 1), value=1)
        # The forward grows the cache in place: after an exception here the engine must reset().
        out = self.model(input_ids=tokens, attention_mask=mask, position_ids=positions,
                         use_cache=True, **{self._cache_arg: self._cache})
        self._mask = mask
        scores = out.logits[:, -1].to(dtype=torch.float32, device="cpu")
        for i, row in enumerate(self._rows):
            self._advance(row, scores[i : i + 1])

    def _advance(self, row: _Row, scores: torch.Tensor) -> None:
        """Choose the row's next token and record it (text, count, finish)."""
        token = row.sampler.choose(scores, torch.tensor([row.seen]))
        row.seen.append(token)
        row.generated += 1
        if token in self.eos_ids:
            row.finish_reason = "eos"
        else:
            row.pending.append(row.decoder.push(token))
        if row.finish_reason is None and row.generated >= row.spec.params.max_new_tokens:
            row.finish_reason = "length"
        if row.finish_reason is not None:
            row.pending.append(row.decoder.flush())

    def _report(self, row: _Row) -> RowUpdate:
        text = "".join(row.pending)
        row.pending.clear()
        finished = row.finish_reason is not None
        return RowUpdate(row.spec.row_id, text, row.generated, finished, row.finish_reason)

    # ----- leaving rows -----------------------------------------------------------

    def _drop(self, leaving: list[_Row]) -> None:
        if not leaving:
            return
        gone = {id(row) for row in leaving}
        keep = [i for i, row in enumerate(self._rows) if id(row) not in gone]
        self._rows = [self._rows[i] for i in keep]
        if not keep:
            self._cache, self._mask = None, None
            return
        assert self._cache is not None and self._mask is not None
        index = torch.tensor(keep, device=self._device)
        self._cache.batch_select_indices(index)
        self._mask = self._mask.index_select(0, index)
        self._trim()

    def _trim(self) -> None:
        """Cut padding columns that every remaining row has on its left."""
        assert self._cache is not None and self._mask is not None
        shared = int((self._mask.cumsum(-1) == 0).sum(-1).min())
        if shared == 0:
            return
        for layer in self._cache.layers:
            layer.keys = layer.keys[..., shared:, :]
            layer.values = layer.values[..., shared:, :]
        self._mask = self._mask[:, shared:]
