"""Hostile requests: each one runs or is refused with a reason, and never changes what its batch neighbours get."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from models.engine import Engine
from models.errors import InvalidRequest
from models.params import MAX_SEED, validate_params, validate_request
from models.types import Done, EngineConfig, GenerationParams, GenerationRequest, ParamLimits

pytestmark = pytest.mark.timeout(300)
ON_ENGINE_LOOP = pytest.mark.asyncio(loop_scope="module")  # one engine (one model load) for the module

LIMITS = ParamLimits(max_new_tokens=4, max_variants=3, max_prompt_chars=400)
FIELDS = tuple(f.name for f in fields(GenerationParams))

# What the sampler can run, written from its side: whole numbers or finite reals inside these bounds.
WHOLE = {"max_new_tokens": (1, LIMITS.max_new_tokens), "top_k": (0, 1000), "variants": (1, LIMITS.max_variants),
         "seed": (0, MAX_SEED)}
REAL = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0), "repetition_penalty": (1.0, 2.0)}
OPEN_BELOW = {"top_p"}  # top_p 0 keeps no token at all

EDGES: list[object] = [
    0, 1, 2, -1, 0.0, -0.0, 1.0, 2.0, 0.5, 5e-324, 2.2250738585072014e-308, 1e-300, 1e-45, 1e-38, 1e-5, 1e-4,
    0.9999999999999999, 1.0000000000000002, 2.0000000000000004, 1e308, math.inf, -math.inf, math.nan,
    2**31, 2**53 + 1, MAX_SEED, MAX_SEED + 1, 2**64, -(2**63), 10**400, True, False, None, "1", "0.5", b"1", [1],
]


def runnable(params: GenerationParams) -> bool:
    """The oracle: True when every field is something the sampler can run."""
    for name, (low, high) in WHOLE.items():
        value = getattr(params, name)
        if name == "seed" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return False
    for name, (bottom, top) in REAL.items():
        value = getattr(params, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        if not (bottom < value if name in OPEN_BELOW else bottom <= value) or value > top:
            return False
    return True


def ordinary_values(name: str) -> st.SearchStrategy[object]:
    """Any value the sampler can run, edges included."""
    if name in WHOLE:
        low, high = WHOLE[name]
        values: st.SearchStrategy[object] = st.integers(low, high)
        return st.one_of(st.none(), values) if name == "seed" else values
    low_f, high_f = REAL[name]
    return st.floats(low_f, high_f, exclude_min=name in OPEN_BELOW)


HOSTILE_VALUES = st.one_of(st.sampled_from(EDGES), st.floats(), st.integers(), st.text(max_size=3))


@st.composite
def params_space(draw: st.DrawFn) -> GenerationParams:
    """Ordinary settings with up to three fields replaced by hostile values (some of which are fine)."""
    values = {name: draw(ordinary_values(name)) for name in FIELDS}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        values[name] = draw(HOSTILE_VALUES)
    return GenerationParams(**values)  # type: ignore[arg-type]


@given(params=params_space())
@example(GenerationParams(temperature=1e-300))
@example(GenerationParams(seed=10**400))
@example(GenerationParams(top_k=True))
@settings(max_examples=400, deadline=None, derandomize=True, database=None)
def test_every_parameter_set_is_accepted_exactly_when_it_can_be_sampled(params: GenerationParams) -> None:
    try:
        validate_params(params, LIMITS)
    except InvalidRequest as refused:
        assert not runnable(params), f"refused a runnable request: {refused}"
        assert refused.field in FIELDS and refused.message
        assert str(refused).startswith(f"{refused.field}: ") and len(str(refused)) < 200
        assert _field_alone_is_refused(params, refused.field)
    else:
        assert runnable(params), f"accepted a request the sampler cannot run: {params}"


def _field_alone_is_refused(params: GenerationParams, name: str) -> bool:
    """The named field is at fault on its own: ordinary values everywhere else are still refused."""
    alone = replace(GenerationParams(max_new_tokens=LIMITS.max_new_tokens), **{name: getattr(params, name)})
    try:
        validate_params(alone, LIMITS)
    except InvalidRequest as again:
        return again.field == name
    return False


# -- through the engine and the real tiny GPT-2 -----------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engine]:
    config = EngineConfig(
        model_name=str(tiny_model_dir), device="cpu", cache_dir=tmp_path_factory.mktemp("cache"), warmup=False,
        max_batch_size=16, max_queue_size=64, max_pending_per_user=64, batch_wait_s=0.05, limits=LIMITS,
    )
    async with Engine(config) as started:
        yield started


@dataclass(frozen=True)
class Outcome:
    """What a member would see: the final status, and the texts or the reason."""

    status: str
    texts: tuple[str, ...] = ()
    reason: str = ""


async def outcome_of(engine: Engine, request: GenerationRequest) -> Outcome:
    try:
        handle = engine.submit(request)
    except InvalidRequest as refused:
        return Outcome("refused", reason=str(refused))
    end = await handle.wait()
    if isinstance(end, Done):
        return Outcome("done", end.result.texts)
    return Outcome(type(end).__name__.lower(), reason=getattr(end, "reason", ""))


async def burst(engine: Engine, requests: list[GenerationRequest]) -> list[Outcome]:
    """Submit every request in the same instant, so the engine prefills them together."""
    return list(await asyncio.gather(*(outcome_of(engine, r) for r in requests)))


@given(params=params_space())
@example(GenerationParams(max_new_tokens=4, variants=3, top_k=0, top_p=5e-324, repetition_penalty=2.0, seed=MAX_SEED))
@example(GenerationParams(temperature=2.0, top_k=1, top_p=1.0, seed=0))
@ON_ENGINE_LOOP
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
async def test_each_request_runs_or_is_refused_with_a_reason(engine: Engine, params: GenerationParams) -> None:
    got = await outcome_of(engine, GenerationRequest("Once upon a time", params, user_key="prop"))
    event(got.status)
    if got.status == "refused":
        assert not runnable(params) and got.reason.split(":")[0] in FIELDS
    else:
        assert runnable(params), f"ran a request that should be refused: {params}"
        assert got.status == "done", got
        assert len(got.texts) == params.variants


@ON_ENGINE_LOOP
@pytest.mark.parametrize("temperature", [5e-324, 1e-300, 1e-38])
async def test_tiny_temperatures_run_greedily(engine: Engine, temperature: float) -> None:
    greedy = GenerationParams(max_new_tokens=4, temperature=0.0, seed=1)
    tiny, zero = await burst(engine, [GenerationRequest("Once upon a time", replace(greedy, temperature=temperature)),
                                      GenerationRequest("Once upon a time", greedy, user_key="other")])
    assert tiny == zero and tiny.status == "done"


ORDINARY = [
    GenerationRequest(prompt, GenerationParams(max_new_tokens=4, temperature=t, top_k=k, seed=seed, variants=v),
                      user_key=f"member{n}")
    for n, (prompt, t, k, seed, v) in enumerate([
        ("Once upon a time", 0.0, 50, 1, 1),
        ("The quick brown fox", 0.8, 50, 2, 2),
        ("Café au lait", 1.0, 0, 3, 1),
        ("def hello(name):", 1.3, 5, 4, 1),
        ("In the beginning", 0.7, 40, 5, 3),
        ("Dear diary,", 0.0, 50, 6, 1),
    ])
]


def hostile(prompt: str = "Once upon a time", **params: object) -> GenerationRequest:
    return GenerationRequest(prompt, replace(GenerationParams(max_new_tokens=4, seed=9), **params),  # type: ignore[arg-type]
                             user_key="hostile")


HOSTILE = {
    "temperature 1e-300": hostile(temperature=1e-300),
    "denormal temperature": hostile(temperature=5e-324),
    "nan temperature": hostile(temperature=math.nan),
    "infinite top_p": hostile(top_p=math.inf),
    "400-digit seed": hostile(seed=10**400),
    "boolean top_k": hostile(top_k=True),
    "denormal top_p, every cap at its maximum": hostile(top_p=5e-324, top_k=0, repetition_penalty=2.0,
                                                        variants=3, seed=MAX_SEED),
    "lone surrogate in the prompt": hostile("hello \ud800 world"),
    "prompt past the model's context": hostile("🙂" * 400),
}


@ON_ENGINE_LOOP
@pytest.mark.parametrize("bad", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_a_hostile_request_never_changes_its_neighbours_outcome(engine: Engine, bad: GenerationRequest) -> None:
    alone = await burst(engine, ORDINARY)
    beside = await burst(engine, [*ORDINARY[:3], bad, *ORDINARY[3:]])
    own = beside.pop(3)
    assert all(o.status == "done" for o in alone)
    assert beside == alone  # identical texts and statuses, whatever sat in the batch beside them
    assert own.status in ("done", "refused"), own
    if own.status == "refused":
        with pytest.raises(InvalidRequest):
            validate_request(bad, LIMITS)


@pytest.mark.parametrize(("prompt", "accepted"), [
    ("hello \ud800 world", False), ("\udfff", False), ("emoji 🙂 and e\u0301", True), ("nul \x00 byte", True),
])
def test_a_prompt_is_text_or_refused_with_a_reason(prompt: str, accepted: bool) -> None:
    request = GenerationRequest(prompt, GenerationParams(max_new_tokens=4))
    if accepted:
        validate_request(request, LIMITS)
        return
    with pytest.raises(InvalidRequest, match="lone surrogate") as refused:
        validate_request(request, LIMITS)
    assert refused.value.field == "prompt"
