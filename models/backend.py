"""The in-process model as a ``Backend``: a batch of rows decoded together, rows join and leave at any step."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from models.detokenize import IncrementalDecoder
from models.protocol import Progress, RowSpec, RowStart, RowUpdate, Work
from models.sampling import BatchSampler, row_settings
from models.slots import SlotCache
from models.types import GenerationParams

log = logging.getLogger(__name__)

DEFAULT_CONTEXT = 2048  # when the config names no maximum length


@dataclass
class _Row:
    """Host-side state of one running row (its keys and values live in the ``SlotCache``)."""

    spec: RowSpec
    decoder: IncrementalDecoder
    generated: int = 0
    pending: list[str] = field(default_factory=list)  # text not yet reported
    finish_reason: str | None = None
    error: str | None = None


class TorchBackend:
    """Owns the model; every method must be called from the same single thread.

    Rows run in a ``SlotCache`` (preallocated keys/values, one slot per row). New rows are
    prefilled together, left-padded, then copied into free slots; their first token is chosen
    from the prefill's logits and its text reported at once. A decode step feeds every row's
    last token at its own position, samples the whole batch in one pass (``BatchSampler``) and
    syncs with the host once (the chosen ids, for the text). Finished rows leave by moving the
    last row into their slot. Per-row faults (unusable scores, a tokenizer or detokenizer error)
    fail that row alone; a forward that raises leaves the running rows as they were.
    """

    def __init__(
        self, model: Any, tokenizer: Any, model_name: str, prompt_overflow: str = "truncate",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.prompt_overflow = prompt_overflow
        first = next(model.parameters())
        self._device = first.device
        self.device = str(first.device)
        self.dtype = str(first.dtype).removeprefix("torch.")
        self.max_context = self._context_length(model.config)
        self.eos_ids = self._eos_ids(model, tokenizer)  # a row ends when it picks one of these
        self._eos = torch.tensor(sorted(self.eos_ids) or [-1], device=self._device)
        head = model.get_output_embeddings()
        self._vocab = int(getattr(head, "out_features", None) or head.weight.shape[0])
        self._float_mask = getattr(model.config, "_attn_implementation", "sdpa") == "eager"
        self._slots: SlotCache | None = None
        self._sampler = BatchSampler(self._vocab, self._device)
        self._rows: list[_Row] = []  # running rows, in slot order
        self._settings: list[Any] = []  # their sampling settings, in slot order
        self._next = torch.zeros(0, dtype=torch.long, device=self._device)  # each row's token to feed
        self._seen = torch.zeros((0, self._vocab), dtype=torch.bool, device=self._device)
        self._reports: list[_Row] = []  # rows that finished outside a step, to report next

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

    # ----- the protocol -----------------------------------------------------------

    def iterate(self, work: Work) -> Progress:
        """Drop ``work.remove``; then prefill ``work.add`` if any, else decode one step."""
        if work.remove:
            self.remove(work.remove)
        if work.add:
            starts = self.add(work.add)
            return Progress(starts=tuple(starts), updates=tuple(self._collect(prefill=True)))
        stepped = bool(self._rows)
        return Progress(updates=tuple(self.step()), stepped=stepped)

    def active(self) -> int:
        """Rows still to report as finished (running, or finished outside a step)."""
        return len(self._rows) + len(self._reports)

    def reset(self) -> None:
        """Drop every row and free the cache (after an error)."""
        self._rows, self._settings, self._reports = [], [], []
        self._next = self._next[:0]
        self._seen = self._seen[:0]
        if self._slots is not None:
            self._slots.release()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()

    def warmup(self) -> None:
        """Run one tiny greedy generation so the first real request is not the slow one."""
        params = GenerationParams(max_new_tokens=2, temperature=0.0, seed=0)
        self.add([RowSpec(row_id=-1, prompt="Hello", params=params, variant=0)])
        while self._rows:
            self.step()
        self.reset()

    # ----- the steps the protocol is made of (public for tests) ---------------------

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
            with torch.inference_mode():
                self._prefill(accepted)
        return starts

    def step(self) -> list[RowUpdate]:
        """One decode step for every row; returns an update per row (and rows that ended before it).

        If this raises, every row still holds what it held before the step.
        """
        if self._rows:
            with torch.inference_mode():
                self._decode()
        return self._collect(prefill=False)

    def remove(self, row_ids: Iterable[int]) -> None:
        """Cancel rows now; the other rows go on untouched."""
        with torch.inference_mode():
            self._remove(tuple(row_ids))

    # ----- adding rows ------------------------------------------------------------

    def _tokenize(self, spec: RowSpec) -> tuple[list[int], RowStart]:
        try:
            ids = list(self.tokenizer(spec.prompt)["input_ids"])
        except Exception as exc:  # noqa: BLE001 - one prompt the tokenizer cannot read fails alone
            log.warning("the tokenizer failed on row %s", spec.row_id, exc_info=True)
            return [], RowStart(spec.row_id, 0, False, f"the prompt could not be read ({type(exc).__name__})")
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
        seen = torch.zeros((len(accepted), self._vocab), dtype=torch.bool)
        for i, (_, ids) in enumerate(accepted):
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            mask[i, width - len(ids):] = 1
            seen[i, ids] = True
        input_ids, mask, seen = input_ids.to(self._device), mask.to(self._device), seen.to(self._device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        settings = [row_settings(spec.params, spec.params.seed or 0, spec.variant) for spec, _ in accepted]
        cache = DynamicCache(config=self.model.config)
        self._sampler.set_rows(settings, seen)  # the newcomers' first tokens come from the prefill's logits
        try:
            self._sampler.draw()
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                             use_cache=True, logits_to_keep=1, cache=cache)
            chosen, broken = self._sampler.choose(out.logits[:, -1])
        except BaseException:
            self._sampler.set_rows(self._settings, self._seen)  # the running rows sample as before
            raise
        # The batch changes only from here on: a prefill that raised left the running rows as they were.
        if self._slots is None:
            self._slots = SlotCache(self._device)
        self._slots.admit([_keys_values(layer) for layer in cache.layers], [len(ids) for _, ids in accepted])
        first = len(self._rows)
        self._rows += [self._new_row(spec, ids) for spec, ids in accepted]
        self._settings += settings
        self._seen = torch.cat([self._seen, seen])
        self._next = torch.cat([self._next, chosen])
        self._sampler.set_rows(self._settings, self._seen)
        self._record_all(chosen, broken, first)

    def _new_row(self, spec: RowSpec, ids: list[int]) -> _Row:
        assert spec.params.seed is not None, "the engine resolves the seed before add()"
        return _Row(spec=spec, decoder=IncrementalDecoder(self.tokenizer, ids))

    # ----- decoding ---------------------------------------------------------------

    def _decode(self) -> None:
        assert self._slots is not None
        positions, mask = self._slots.begin_decode()
        if self._float_mask:
            mask = torch.zeros(mask.shape, dtype=self.model.dtype, device=self._device).masked_fill(
                ~mask, torch.finfo(self.model.dtype).min)
        self._sampler.draw()
        out = self.model(input_ids=self._next[:, None], attention_mask=mask, position_ids=positions,
                         use_cache=True, cache=self._slots)
        self._slots.end_decode()
        chosen, broken = self._sampler.choose(out.logits[:, -1])
        self._next = chosen
        self._record_all(chosen, broken, 0)

    def _record_all(self, chosen: torch.Tensor, broken: torch.Tensor, first: int) -> None:
        """Record the tokens chosen for rows ``first..`` (every row after a step, the newcomers after a prefill)."""
        rows = torch.arange(first, first + len(chosen), device=self._device)
        self._seen[rows, chosen] = True
        picked = torch.stack([chosen, broken.long()]).tolist()  # the iteration's one wait for the device
        for row, token, bad in zip(self._rows[first:], picked[0], picked[1], strict=True):
            self._record(row, token, bool(bad))
        leaving = {slot for slot, row in enumerate(self._rows) if row.finish_reason is not None}
        if leaving:
            self._reports += [self._rows[slot] for slot in sorted(leaving)]
            self._drop(leaving)

    def _record(self, row: _Row, token: int, broken: bool) -> None:
        """Record one chosen token of ``row``: its text, its count, whether it ends the row."""
        if broken:
            row.finish_reason, row.error = "error", "the model's scores for this request were not numbers"
            return
        row.generated += 1
        try:
            if token in self.eos_ids:
                row.finish_reason = "eos"
            else:
                row.pending.append(row.decoder.push(token))
            if row.finish_reason is None and row.generated >= row.spec.params.max_new_tokens:
                row.finish_reason = "length"
            if row.finish_reason is not None:
                row.pending.append(row.decoder.flush())
        except Exception as exc:  # noqa: BLE001 - a token the tokenizer cannot decode fails its row alone
            log.warning("decoding failed for row %s", row.spec.row_id, exc_info=True)
            row.finish_reason, row.error = "error", f"the text could not be decoded ({type(exc).__name__})"

    def _collect(self, prefill: bool) -> list[RowUpdate]:
        """Updates for finished rows and for running rows with news (after a prefill: only rows with text)."""
        reports, self._reports = self._reports, []
        running = [row for row in self._rows if row.pending] if prefill else self._rows
        return [self._report(row) for row in reports + running]

    @staticmethod
    def _report(row: _Row) -> RowUpdate:
        text = "".join(row.pending)
        row.pending.clear()
        finished = row.finish_reason is not None
        return RowUpdate(row.spec.row_id, text, row.generated, finished, row.finish_reason, row.error)

    # ----- leaving rows -----------------------------------------------------------

    def _remove(self, row_ids: Sequence[int]) -> None:
        gone = set(row_ids)
        self._reports = [row for row in self._reports if row.spec.row_id not in gone]
        leaving = {slot for slot, row in enumerate(self._rows) if row.spec.row_id in gone}
        if leaving:
            self._drop(leaving)

    def _drop(self, leaving: set[int]) -> None:
        assert self._slots is not None
        order = self._slots.drop(leaving)
        self._rows = [self._rows[i] for i in order]
        self._settings = [self._settings[i] for i in order]
        index = torch.tensor(order, dtype=torch.long, device=self._device)
        self._next = self._next.index_select(0, index)
        self._seen = self._seen.index_select(0, index)
        self._sampler.set_rows(self._settings, self._seen)


def _keys_values(layer: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A full-attention cache layer's tensors (the loader refuses models with any other kind)."""
    return layer.keys, layer.values
