"""The decode loop: batching never changes a row's output, rows join and leave mid-way, prompts over context."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import torch

from models.backend import TorchBackend as Backend
from models.protocol import RowSpec, RowStart, Work
from models.detokenize import IncrementalDecoder
from models.loader import load_backend
from models.types import EngineConfig, GenerationParams
from tests.conftest import needs_smollm2

GREEDY = GenerationParams(max_new_tokens=12, temperature=0.0, seed=0)
SAMPLED = GenerationParams(max_new_tokens=12, temperature=1.0, top_k=50, top_p=0.9, repetition_penalty=1.2, seed=42)
PROMPTS = (
    "Once upon a time",
    "Café",
    "The quick brown fox jumps over the lazy dog, again and again and again",
    "def hello(name):",
)


@dataclass
class Outcome:
    """What the user would get for one row."""

    texts: list[str] = field(default_factory=list)
    tokens: int = 0
    reason: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.texts)


def run(backend: Backend, first: list[RowSpec], joins: dict[int, list[RowSpec]] | None = None,
        removals: dict[int, list[int]] | None = None) -> dict[int, Outcome]:
    """Drive the backend like the engine: add, step until idle, adding/removing rows after given steps."""
    joins, removals = joins or {}, removals or {}
    outcomes: dict[int, Outcome] = {}
    assert all(start.error is None for start in backend.add(first))
    steps = 0
    while backend.active() or any(k > steps for k in joins):
        for update in backend.step():
            outcome = outcomes.setdefault(update.row_id, Outcome())
            assert outcome.reason is None, "no update after a row finished"
            outcome.texts.append(update.text)
            outcome.tokens, outcome.reason = update.tokens, update.finish_reason
        steps += 1
        if steps in joins:
            assert all(start.error is None for start in backend.add(joins[steps]))
        if steps in removals:
            backend.remove(removals[steps])
    return outcomes


def reference(backend: Backend, prompt_ids: list[int], max_new_tokens: int) -> tuple[str, int]:
    """Plain unbatched greedy ``model.generate``: (text up to EOS, tokens including EOS)."""
    output = backend.model.generate(torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids),
                                    dtype=torch.long), do_sample=False, max_new_tokens=max_new_tokens)
    new = output[0, len(prompt_ids):].tolist()
    eos = backend.tokenizer.eos_token_id
    if eos in new:
        new = new[: new.index(eos) + 1]
    return backend.tokenizer.decode(new, skip_special_tokens=True), len(new)


def ids(backend: Backend, prompt: str) -> list[int]:
    return list(backend.tokenizer(prompt)["input_ids"])


@pytest.fixture(scope="module")
def loaded(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    config = EngineConfig(model_name=str(tiny_model_dir), device="cpu", cache_dir=tmp_path_factory.mktemp("cache"))
    return load_backend(config)


@pytest.fixture
def backend(loaded: Backend) -> Iterator[Backend]:
    loaded.prompt_overflow = "truncate"
    loaded.reset()
    yield loaded
    loaded.reset()


def specs(params: GenerationParams, prompts: tuple[str, ...] | list[str], first_id: int = 0) -> list[RowSpec]:
    return [RowSpec(first_id + i, prompt, params, 0) for i, prompt in enumerate(prompts)]


def test_batched_greedy_equals_unbatched_generate_with_rows_joining_midway(backend: Backend) -> None:
    params = replace(GREEDY, max_new_tokens=16)
    outcomes = run(backend, specs(params, PROMPTS[:2]), joins={3: specs(params, PROMPTS[2:], first_id=2)})
    for row_id, prompt in enumerate(PROMPTS):
        text, tokens = reference(backend, ids(backend, prompt), params.max_new_tokens)
        assert (outcomes[row_id].text, outcomes[row_id].tokens) == (text, tokens), prompt
    assert backend.active() == 0


def test_seeded_row_is_identical_alone_in_a_batch_and_joining_midway(backend: Backend) -> None:
    target = RowSpec(99, "Emoji are fun", SAMPLED, 0)
    alone = run(backend, [target])[99]
    others = [RowSpec(i, prompt, replace(SAMPLED, seed=i, temperature=0.7), 1) for i, prompt in enumerate(PROMPTS)]
    in_batch = run(backend, others[:2] + [target] + others[2:])[99]
    joining = run(backend, others, joins={4: [target]})[99]
    assert alone.text and alone.tokens == SAMPLED.max_new_tokens
    assert in_batch.text == alone.text and joining.text == alone.text


def test_variants_of_one_request_differ_and_each_replays(backend: Backend) -> None:
    rows = [RowSpec(v, "Once upon a time", SAMPLED, v) for v in range(3)]
    together = run(backend, rows)
    assert len({together[v].text for v in range(3)}) == 3
    assert run(backend, [rows[2]])[2].text == together[2].text


def test_remove_stops_a_row_and_leaves_batch_mates_untouched(backend: Backend) -> None:
    rows = specs(SAMPLED, PROMPTS)
    undisturbed = run(backend, rows)
    disturbed = run(backend, rows, removals={3: [1]})
    assert disturbed[1].tokens < SAMPLED.max_new_tokens and disturbed[1].reason is None
    for row_id in (0, 2, 3):
        assert disturbed[row_id].text == undisturbed[row_id].text
    assert backend.active() == 0


def test_a_failing_prefill_leaves_the_running_rows_untouched(backend: Backend,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    undisturbed = run(backend, specs(SAMPLED, PROMPTS[:2]))
    assert backend.add(specs(SAMPLED, PROMPTS[:2]))
    backend.step()

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise RuntimeError("out of memory")

    with monkeypatch.context() as patch:
        patch.setattr(backend.model, "forward", out_of_memory)
        with pytest.raises(RuntimeError):
            backend.add([RowSpec(9, "Café", SAMPLED, 0)])
    assert backend.active() == 2
    rest = run(backend, [])
    for row_id in (0, 1):
        texts = [undisturbed[row_id].texts[0]] + rest[row_id].texts
        assert "".join(texts) == undisturbed[row_id].text


def test_prompt_over_context_keeps_its_end_when_truncating(backend: Backend) -> None:
    long_prompt = " ".join(PROMPTS) * 10
    params = replace(GREEDY, max_new_tokens=8)
    [start] = backend.add([RowSpec(0, long_prompt, params, 0)])
    room = backend.max_context - params.max_new_tokens
    assert start == RowStart(0, room, True)
    outcome = run(backend, [])[0]
    assert (outcome.text, outcome.tokens) == reference(backend, ids(backend, long_prompt)[-room:], 8)


def test_prompt_over_context_is_refused_in_reject_mode_without_hurting_others(backend: Backend) -> None:
    backend.prompt_overflow = "reject"
    starts = backend.add([RowSpec(0, "word " * 500, GREEDY, 0), RowSpec(1, "Café", GREEDY, 0)])
    assert starts[0].error and "at most" in starts[0].error and starts[1].error is None
    assert backend.active() == 1
    outcomes = run(backend, [])
    assert set(outcomes) == {1} and outcomes[1].tokens == GREEDY.max_new_tokens


def test_max_new_tokens_as_long_as_the_context_is_refused(backend: Backend) -> None:
    [start] = backend.add([RowSpec(0, "Hi", replace(GREEDY, max_new_tokens=backend.max_context), 0)])
    assert start.error and "no room" in start.error and backend.active() == 0


def test_empty_prompt_starts_from_bos_or_is_refused(backend: Backend) -> None:
    [start] = backend.add([RowSpec(0, "", GREEDY, 0)])
    assert start == RowStart(0, 1, False) and run(backend, [])[0].tokens == GREEDY.max_new_tokens
    bos = backend.tokenizer.bos_token
    backend.tokenizer.bos_token = None
    try:
        [start] = backend.add([RowSpec(1, "", GREEDY, 0)])
    finally:
        backend.tokenizer.bos_token = bos
    assert start.error == "the prompt is empty" and backend.active() == 0


def test_single_token_request_finishes_at_the_next_step(backend: Backend) -> None:
    backend.add([RowSpec(0, "Café", replace(GREEDY, max_new_tokens=1), 0)])
    assert backend.active() == 1
    [update] = backend.step()
    assert update.finished and update.tokens == 1 and update.finish_reason == "length"
    assert backend.active() == 0


def test_generation_stops_at_eos(tiny_model_dir: Path, tmp_path: Path) -> None:
    backend = load_backend(EngineConfig(model_name=str(tiny_model_dir), device="cpu", cache_dir=tmp_path))
    greedy = backend.model.generate(**backend.tokenizer("Café", return_tensors="pt"), do_sample=False,
                                    max_new_tokens=8)[0, -8:].tolist()
    stop_at = next(i for i, token in enumerate(greedy) if i > 0 and token not in greedy[:i])
    backend.model.generation_config.eos_token_id = greedy[stop_at]  # that greedy token now ends the text
    backend = Backend(backend.model, backend.tokenizer, backend.model_name)
    outcome = run(backend, [RowSpec(0, "Café", GREEDY, 0)])[0]
    assert (outcome.tokens, outcome.reason) == (stop_at + 1, "eos")
    assert outcome.text == backend.tokenizer.decode(greedy[:stop_at])


def test_streamed_text_never_splits_a_character(backend: Backend) -> None:
    # A random byte-level model emits lone UTF-8 bytes: the stream must hold them until they resolve.
    rows = [RowSpec(i, "Emoji 🎉 привет 日本語", replace(SAMPLED, seed=i, max_new_tokens=40), 0) for i in range(6)]
    outcomes = run(backend, rows)
    for outcome in outcomes.values():
        streamed = ""
        for delta in outcome.texts:
            streamed += delta
            assert not streamed.endswith("\ufffd") or delta is outcome.texts[-1]
    assert any("" in outcome.texts[:-1] for outcome in outcomes.values()), "no held-back text was exercised"


def test_incremental_decoder_holds_partial_characters(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = " naïve façade 🎉🚀 日本語 привет"
    token_ids = tokenizer(text)["input_ids"]
    decoder = IncrementalDecoder(tokenizer, tokenizer("Say:")["input_ids"])
    deltas = [decoder.push(token) for token in token_ids] + [decoder.flush()]
    assert "".join(deltas) == text
    assert all("\ufffd" not in delta for delta in deltas)
    assert "" in deltas[:-1], "the emoji should span several byte tokens"


def test_warmup_leaves_the_backend_idle(backend: Backend) -> None:
    backend.warmup()
    assert backend.active() == 0
    assert run(backend, specs(GREEDY, PROMPTS[:1]))[0].tokens == GREEDY.max_new_tokens


@pytest.fixture(scope="module")
def smollm2(smollm2_cache_dir: Path) -> Backend:
    return load_backend(EngineConfig(device="cpu", cache_dir=smollm2_cache_dir))


@pytest.mark.slow
@needs_smollm2
def test_smollm2_batched_greedy_equals_unbatched_generate(smollm2: Backend, smollm2_cache_dir: Path) -> None:
    # the reference is plain transformers: no packed weights (the app packs them on CPU by default)
    plain = load_backend(EngineConfig(device="cpu", cache_dir=smollm2_cache_dir, pack_weights=False))
    prompts = ("The capital of France is", "Once upon a time, in a small village by the sea,", "def add(a, b):")
    params = replace(GREEDY, max_new_tokens=10)
    outcomes = run(smollm2, specs(params, prompts[:2]), joins={2: specs(params, prompts[2:], first_id=2)})
    for row_id, prompt in enumerate(prompts):
        text, tokens = reference(plain, ids(plain, prompt), params.max_new_tokens)
        assert (outcomes[row_id].text, outcomes[row_id].tokens) == (text, tokens)
    assert "Paris" in outcomes[0].text


def test_first_token_text_is_available_right_after_prefill(backend: Backend) -> None:
    params = replace(GREEDY, max_new_tokens=6)
    prompt = PROMPTS[0]
    expected, _ = reference(backend, ids(backend, prompt), params.max_new_tokens)
    admitted = backend.iterate(Work(add=tuple(specs(params, [prompt]))))
    first = list(admitted.updates)
    assert [u.tokens for u in first] == [1] and not first[0].finished and not admitted.stepped
    rest = []
    while backend.active():
        progress = backend.iterate(Work())
        assert progress.stepped
        rest += [u.text for u in progress.updates]
    assert first[0].text + "".join(rest) == expected
