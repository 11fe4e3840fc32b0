"""The engine: queueing, fairness, cancel, faults, shutdown, on a fake backend and the tiny GPT-2."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models.engine import Engine
from models.errors import EngineClosed, InvalidRequest, ModelLoadError, QueueFull, TooManyPending, WorkerDied
from models.handle import RequestHandle
from models.types import (
    Cancelled,
    Delta,
    Done,
    EngineConfig,
    Event,
    Failed,
    GenerationParams,
    GenerationRequest,
    Queued,
    Started,
)
from tests.models.fake_backend import FakeBackend

pytestmark = pytest.mark.timeout(60)


def config(**overrides: object) -> EngineConfig:
    base = EngineConfig(model_name="fake", device="cpu", max_batch_size=4, max_queue_size=16,
                        max_pending_per_user=8, request_timeout_s=30.0, warmup=False)
    return replace(base, **overrides)  # type: ignore[arg-type]


def factory(backend: FakeBackend) -> Callable[..., FakeBackend]:
    return lambda cfg, progress: backend


def req(prompt: str = "hello there", user: str = "u1", tokens: int = 5, seed: int = 100,
        variants: int = 1) -> GenerationRequest:
    params = GenerationParams(max_new_tokens=tokens, seed=seed, variants=variants)
    return GenerationRequest(prompt=prompt, params=params, user_key=user)


async def events_of(handle: RequestHandle) -> list[Event]:
    return [event async for event in handle]


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


def final(events: list[Event]) -> Event:
    return events[-1]


# -- the happy path -----------------------------------------------------------------------------


async def test_events_stream_text_and_end_with_done() -> None:
    backend = FakeBackend()
    async with Engine(config(), backend_factory=factory(backend)) as engine:
        events = await events_of(engine.submit(req(tokens=4, seed=3)))
    assert isinstance(events[0], Queued) and events[0].position == 1
    started = next(e for e in events if isinstance(e, Started))
    assert started.seed == 3 and started.prompt_tokens == 2
    done = final(events)
    assert isinstance(done, Done)
    assert done.result.texts == ("w3 w4 w5 w6 ",) == (text_of(events),)
    assert done.result.completion_tokens == (4,) and done.result.seed == 3


async def test_seed_is_drawn_at_submit_and_reported() -> None:
    async with Engine(config(), backend_factory=factory(FakeBackend())) as engine:
        handle = engine.submit(replace(req(), params=GenerationParams(max_new_tokens=2, seed=None)))
        assert isinstance(handle.seed, int)
        done = await handle.wait()
    assert isinstance(done, Done) and done.result.seed == handle.seed


async def test_variants_take_one_row_each_and_come_back_labelled() -> None:
    async with Engine(config(), backend_factory=factory(FakeBackend())) as engine:
        events = await events_of(engine.submit(req(tokens=2, seed=0, variants=3)))
    done = final(events)
    assert isinstance(done, Done)
    assert done.result.texts == ("w0 w1 ", "w7 w8 ", "w14 w15 ")
    assert {e.variant for e in events if isinstance(e, Delta)} == {0, 1, 2}


async def test_invalid_request_is_refused_at_submit() -> None:
    async with Engine(config(), backend_factory=factory(FakeBackend())) as engine:
        with pytest.raises(InvalidRequest) as info:
            engine.submit(req(tokens=10_000))
        assert info.value.field == "max_new_tokens"
        with pytest.raises(InvalidRequest):
            engine.submit(req(prompt="   "))


async def test_a_row_the_backend_refuses_fails_only_that_request() -> None:
    backend = FakeBackend()
    backend.refuse.add("too long")
    async with Engine(config(), backend_factory=factory(backend)) as engine:
        bad, good = engine.submit(req(prompt="too long")), engine.submit(req(user="u2"))
        bad_end, good_end = await bad.wait(), await good.wait()
    assert isinstance(bad_end, Failed) and bad_end.code == "invalid" and "refused" in bad_end.reason
    assert isinstance(good_end, Done)


# -- batching, queue, fairness ------------------------------------------------------------------


async def test_requests_arriving_mid_batch_join_it_without_waiting_for_it_to_end() -> None:
    backend = FakeBackend(step_delay=0.01)
    async with Engine(config(), backend_factory=factory(backend)) as engine:
        first = engine.submit(req(tokens=40))
        await until(lambda: len(backend.calls) > 5)
        second = engine.submit(req(user="u2", tokens=3))
        await second.wait()
        assert not first.done, "the later request finished while the first one still ran"
        await first.wait()
    steps_with_both = [ids for kind, ids in backend.calls if kind == "step" and len(ids) == 2]
    assert steps_with_both


async def test_an_idle_engine_gathers_a_burst_into_one_prefill() -> None:
    backend = FakeBackend()
    async with Engine(config(batch_wait_s=0.05), backend_factory=factory(backend)) as engine:
        handles = []
        for user in ("u1", "u2", "u3"):
            handles.append(engine.submit(req(user=user, tokens=2)))
            await asyncio.sleep(0.01)  # arrivals a little apart, as slash commands come in
        await asyncio.gather(*(h.wait() for h in handles))
    adds = [ids for kind, ids in backend.calls if kind == "add"]
    assert len(adds[0]) == 3, f"the burst was read in pieces: {adds}"


async def test_a_burst_that_fills_the_batch_starts_without_waiting() -> None:
    backend = FakeBackend()
    async with Engine(config(batch_wait_s=5.0), backend_factory=factory(backend)) as engine:
        handles = [engine.submit(req(user=f"u{i}", tokens=2)) for i in range(4)]  # max_batch_size=4
        await asyncio.wait_for(asyncio.gather(*(h.wait() for h in handles)), 2.0)


async def test_queue_full_is_refused_at_once() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    async with Engine(config(max_batch_size=1, max_queue_size=2), backend_factory=factory(backend)) as engine:
        running = engine.submit(req(user="a"))
        await until(lambda: backend.active() == 1)
        queued = [engine.submit(req(user="b")), engine.submit(req(user="c"))]
        with pytest.raises(QueueFull):
            engine.submit(req(user="d"))
        assert engine.status().queue_length == 2 and engine.status().running == 1
        backend.gate.set()
        ends = [await h.wait() for h in [running, *queued]]
        assert all(isinstance(end, Done) for end in ends)


async def test_per_user_limit_counts_queued_and_running() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    async with Engine(config(max_batch_size=1, max_pending_per_user=2), backend_factory=factory(backend)) as engine:
        first = engine.submit(req(user="alice"))
        await until(lambda: backend.active() == 1)
        second = engine.submit(req(user="alice"))
        with pytest.raises(TooManyPending):
            engine.submit(req(user="alice"))
        other = engine.submit(req(user="bob"))  # another user is not held back
        backend.gate.set()
        await first.wait()
        third = engine.submit(req(user="alice"))  # a slot freed up
        for handle in (second, other, third):
            assert isinstance(await handle.wait(), Done)


async def test_round_robin_across_users_and_positions_follow_it() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    async with Engine(config(max_batch_size=1), backend_factory=factory(backend)) as engine:
        blocker = engine.submit(req(prompt="z", user="z", tokens=1))
        await until(lambda: backend.active() == 1)
        names = ["a1", "a2", "a3", "b1", "c1"]  # user a sends three before b and c send one each
        seen = {n: collect(engine.submit(req(prompt=n, user=n[0], tokens=1))) for n in names}
        await until(lambda: all(events for events, _ in seen.values()))
        await asyncio.sleep(0.01)
        positions = {n: [e.position for e in events if isinstance(e, Queued)][-1] for n, (events, _) in seen.items()}
        assert positions == {"a1": 1, "b1": 2, "c1": 3, "a2": 4, "a3": 5}
        backend.gate.set()
        await blocker.wait()
        await asyncio.gather(*(task for _, task in seen.values()))
    assert backend.added_prompts == ["z", "a1", "b1", "c1", "a2", "a3"]
    a3_positions = [e.position for e in seen["a3"][0] if isinstance(e, Queued)]
    assert a3_positions[-5:] == [5, 4, 3, 2, 1]  # told again each time the queue moved


def collect(handle: RequestHandle) -> tuple[list[Event], asyncio.Task[None]]:
    events: list[Event] = []

    async def run() -> None:
        async for event in handle:
            events.append(event)

    return events, asyncio.get_running_loop().create_task(run())


async def test_queued_events_carry_an_eta_once_throughput_is_measured() -> None:
    backend = FakeBackend(step_delay=0.02)
    async with Engine(config(max_batch_size=1), backend_factory=factory(backend)) as engine:
        assert engine.eta_for_new() == 0.0  # idle: it would start at once
        first = engine.submit(req(user="a", tokens=20))
        await until(lambda: engine.status().tokens_per_s is not None)
        second = collect(engine.submit(req(user="b", tokens=20)))
        third = collect(engine.submit(req(user="c", tokens=20)))
        await until(lambda: bool(third[0]))
        eta_new = engine.eta_for_new()
        await asyncio.gather(first.wait(), second[1], third[1])
    queued = [e for e in third[0] if isinstance(e, Queued)]
    assert queued[0].position == 2 and queued[-1].position == 1
    # The first request has ~19 steps left and the second needs 20 more: about 39 steps of 20 ms.
    assert queued[0].eta_s is not None and 0.3 < queued[0].eta_s < 3.0
    assert queued[-1].eta_s < queued[0].eta_s
    assert eta_new is not None and eta_new > queued[0].eta_s
    assert engine.status().completed == 3


# -- cancel ------------------------------------------------------------------------------------


async def test_cancel_queued_leaves_at_once_and_others_move_up() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    async with Engine(config(max_batch_size=1), backend_factory=factory(backend)) as engine:
        running = engine.submit(req(user="a"))
        await until(lambda: backend.active() == 1)
        doomed = engine.submit(req(prompt="doomed", user="b"))
        behind = collect(engine.submit(req(user="c")))
        doomed.cancel()
        assert doomed.done  # at once, while the worker is still busy
        assert isinstance(await doomed.wait(), Cancelled)
        assert engine.status().queue_length == 1
        await until(lambda: [e.position for e in behind[0] if isinstance(e, Queued)][-1:] == [1])
        backend.gate.set()
        assert isinstance(await running.wait(), Done)
        await behind[1]
    assert "doomed" not in backend.added_prompts
    assert isinstance(behind[0][-1], Done)


async def test_cancel_running_stops_it_and_batch_mates_go_on() -> None:
    backend = FakeBackend(step_delay=0.01)
    async with Engine(config(), backend_factory=factory(backend)) as engine:
        victim_handle = engine.submit(req(user="a", tokens=50, seed=1))
        victim = collect(victim_handle)
        mate = engine.submit(req(user="b", tokens=20, seed=2))
        await until(lambda: any(isinstance(e, Delta) for e in victim[0]))
        victim_handle.cancel()
        await victim[1]
        mate_end = await mate.wait()
    assert isinstance(victim[0][-1], Cancelled)
    assert isinstance(mate_end, Done) and mate_end.result.texts == (backend.expected(2, 0, 20),)
    removed = [ids for kind, ids in backend.calls if kind == "remove"]
    assert len(removed) == 1 and len(removed[0]) == 1
    steps_after = [ids for kind, ids in backend.calls if kind == "step"][-1]
    assert removed[0][0] not in steps_after


# -- faults -------------------------------------------------------------------------------------


async def test_a_step_that_fails_once_is_retried_and_every_request_finishes() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    async with Engine(config(max_batch_size=2), backend_factory=factory(backend)) as engine:
        first, second = engine.submit(req(user="a", seed=1)), engine.submit(req(user="b", seed=2))
        await until(lambda: backend.active() == 2)
        backend.fail_next["step"] = RuntimeError("boom")
        backend.gate.set()
        ends = [await first.wait(), await second.wait()]
        assert ("reset", ()) in backend.calls
        assert [e.result.texts for e in ends if isinstance(e, Done)] == [
            (backend.expected(1, 0, 5),), (backend.expected(2, 0, 5),)]
        assert isinstance(await engine.submit(req(user="c")).wait(), Done)


async def test_a_request_that_breaks_every_batch_fails_alone_and_its_batch_mates_finish() -> None:
    backend = FakeBackend()
    backend.poison.add("poison")
    backend.gate.clear()
    async with Engine(config(max_batch_size=4), backend_factory=factory(backend)) as engine:
        mates = [engine.submit(req(user=f"u{i}", seed=10 * i)) for i in range(3)]
        bad = engine.submit(req(prompt="poison", user="x"))
        backend.gate.set()
        bad_end = await bad.wait()
        mate_ends = [await h.wait() for h in mates]
    assert isinstance(bad_end, Failed) and bad_end.code == "error" and "poison" not in bad_end.reason
    assert [e.result.texts for e in mate_ends if isinstance(e, Done)] == [
        (backend.expected(10 * i, 0, 5),) for i in range(3)]


async def test_a_failing_add_leaves_the_running_rows_alone_and_retries_the_newcomers() -> None:
    backend = FakeBackend(step_delay=0.01)
    backend.poison.add("poison")
    async with Engine(config(), backend_factory=factory(backend)) as engine:
        running = engine.submit(req(user="a", tokens=30, seed=5))
        await until(lambda: backend.active() == 1)
        backend.fail_next["add"] = ValueError("bad prefill")
        joining = engine.submit(req(user="b", seed=6))
        joining_end = await joining.wait()
        poisoned = await engine.submit(req(prompt="poison", user="c")).wait()
        running_end = await running.wait()
    assert [kind for kind, _ in backend.calls].index("reset") == len(backend.calls) - 1  # only at close
    assert isinstance(joining_end, Done) and joining_end.result.texts == (backend.expected(6, 0, 5),)
    assert isinstance(poisoned, Failed) and poisoned.code == "error"
    assert isinstance(running_end, Done) and running_end.result.texts == (backend.expected(5, 0, 30),)


async def test_out_of_memory_resets_and_retries_smaller_without_repeating_text() -> None:
    backend = FakeBackend()
    async with Engine(config(max_batch_size=4), backend_factory=factory(backend)) as engine:
        backend.gate.clear()
        seen = [collect(engine.submit(req(user=u, tokens=6, seed=s))) for u, s in (("a", 10), ("b", 20))]
        await until(lambda: backend.active() == 2)
        backend.fail_on_step[3] = torch.cuda.OutOfMemoryError("CUDA out of memory")  # after 2 words each
        backend.gate.set()
        await asyncio.gather(*(task for _, task in seen))
        assert engine._capacity == 1  # halved from the two rows that ran out of memory
    assert ("reset", ()) in backend.calls
    for (events, _), seed in zip(seen, (10, 20), strict=True):
        assert text_of(events[:5]).startswith(backend.expected(seed, 0, 2))  # sent before the failure
        done = events[-1]
        assert isinstance(done, Done)
        assert done.result.texts == (backend.expected(seed, 0, 6),) == (text_of(events),)
        assert sum(isinstance(e, Started) for e in events) == 1


async def test_out_of_memory_twice_fails_with_oom() -> None:
    backend = FakeBackend()
    async with Engine(config(max_batch_size=1), backend_factory=factory(backend)) as engine:
        backend.fail_on_step[2] = torch.cuda.OutOfMemoryError("CUDA out of memory")
        backend.fail_on_step[4] = torch.cuda.OutOfMemoryError("CUDA out of memory")  # in the retry
        end = await engine.submit(req(tokens=3)).wait()
    assert isinstance(end, Failed) and end.code == "oom"


async def test_a_dead_worker_fails_every_waiter_and_later_submits() -> None:
    backend = FakeBackend()
    backend.gate.clear()
    engine = Engine(config(max_batch_size=1), backend_factory=factory(backend))
    async with engine:
        running = engine.submit(req(user="a"))
        await until(lambda: backend.active() == 1)
        queued = engine.submit(req(user="b"))

        def broken(*args: object) -> int:
            raise RuntimeError("bug in the worker")

        engine._apply = broken  # type: ignore[method-assign]  # inject a failure in the worker itself
        backend.gate.set()
        ends = [await running.wait(), await queued.wait()]
        assert all(isinstance(e, Failed) and e.code == "worker_died" for e in ends)
        with pytest.raises(WorkerDied):
            engine.submit(req(user="c"))


async def test_a_request_over_its_time_limit_fails_with_timeout() -> None:
    backend = FakeBackend(step_delay=0.01)
    async with Engine(config(request_timeout_s=0.3), backend_factory=factory(backend)) as engine:
        slow = engine.submit(req(user="a", tokens=250))
        quick = engine.submit(req(user="b", tokens=3))
        end = await slow.wait()
        assert isinstance(await quick.wait(), Done)
        assert isinstance(end, Failed) and end.code == "timeout"
        await until(lambda: backend.active() == 0)  # its row left the batch


# -- shutdown and close -------------------------------------------------------------------------


async def test_shutdown_fails_queued_at_once_and_running_after_the_grace() -> None:
    backend = FakeBackend(step_delay=0.01)
    async with Engine(config(max_batch_size=2), backend_factory=factory(backend)) as engine:
        short = engine.submit(req(user="a", tokens=5))
        long = engine.submit(req(user="b", tokens=250))
        queued = engine.submit(req(user="c"))
        await until(lambda: backend.active() == 2)
        stopping = asyncio.get_running_loop().create_task(engine.shutdown(grace_s=0.4))
        await asyncio.sleep(0)
        assert isinstance(queued.final, Failed) and queued.final.code == "shutdown"
        with pytest.raises(EngineClosed):
            engine.submit(req(user="d"))
        await stopping
        assert isinstance(await short.wait(), Done)  # finished inside the grace
        long_end = await long.wait()
        assert isinstance(long_end, Failed) and long_end.code == "shutdown"


async def test_close_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    backend = FakeBackend(step_delay=0.01)
    async with Engine(config(), backend_factory=factory(backend)) as engine:
        running = engine.submit(req(tokens=200))
        await until(lambda: backend.active() == 1)
    assert isinstance(running.final, Failed) and running.final.code == "shutdown"
    assert set(threading.enumerate()) <= before


async def test_a_load_error_propagates_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())

    def failing(cfg: EngineConfig, progress: Callable[[str], None]) -> FakeBackend:
        progress("loading")
        raise ModelLoadError("MODEL_NAME=nowhere: no such directory")

    messages: list[str] = []
    with pytest.raises(ModelLoadError, match="no such directory"):
        async with Engine(config(), backend_factory=failing, progress=messages.append):
            pass
    assert set(threading.enumerate()) <= before


# -- the real tiny GPT-2 --------------------------------------------------------------------------


def tiny_config(model_dir: Path, **overrides: object) -> EngineConfig:
    return replace(config(model_name=str(model_dir), cache_dir=model_dir.parent / "cache"), **overrides)  # type: ignore[arg-type]


async def test_seeded_output_is_the_same_alone_and_in_a_busy_engine(tiny_model_dir: Path) -> None:
    params = GenerationParams(max_new_tokens=24, temperature=0.9, top_p=0.9, top_k=40, seed=1234, variants=2)
    mine = GenerationRequest("Once upon a time", params, user_key="me")
    before = set(threading.enumerate())
    async with Engine(tiny_config(tiny_model_dir)) as engine:
        alone = await engine.submit(mine).wait()
    async with Engine(tiny_config(tiny_model_dir, max_batch_size=6)) as engine:
        others = [
            collect(engine.submit(GenerationRequest(p, replace(params, seed=s, variants=1, max_new_tokens=90),
                                                    user_key=f"u{s}")))
            for s, p in ((1, "The quick brown fox"), (2, "Café crème"), (3, "def hello(name):"))
        ]
        await until(lambda: all(any(isinstance(e, Delta) for e in ev) for ev, _ in others))
        busy_events = await events_of(engine.submit(mine))  # joins the running batch mid-way
        assert not all(task.done() for _, task in others)
        await asyncio.gather(*(task for _, task in others))
    busy = busy_events[-1]
    assert isinstance(alone, Done) and isinstance(busy, Done)
    assert busy.result.texts == alone.result.texts
    assert alone.result.texts[0] != alone.result.texts[1]  # variants differ
    assert "".join(e.text for e in busy_events if isinstance(e, Delta) and e.variant == 0) == busy.result.texts[0]
    assert set(threading.enumerate()) <= before  # no inference thread left after close


async def test_cancel_on_the_real_model_leaves_batch_mates_intact(tiny_model_dir: Path) -> None:
    greedy = GenerationParams(max_new_tokens=30, temperature=0.0, seed=0)
    async with Engine(tiny_config(tiny_model_dir)) as engine:
        reference = await engine.submit(GenerationRequest("Grüße aus München", greedy, user_key="a")).wait()
        victim = engine.submit(GenerationRequest("Emoji are fun", replace(greedy, max_new_tokens=100), user_key="b"))
        mate = engine.submit(GenerationRequest("Grüße aus München", greedy, user_key="a"))
        async for event in victim:
            if isinstance(event, Delta):
                victim.cancel()
        mate_end = await mate.wait()
    assert isinstance(victim.final, Cancelled)
    assert isinstance(mate_end, Done) and isinstance(reference, Done)
    assert mate_end.result.texts == reference.result.texts


async def test_one_thread_owns_the_model_from_load_to_the_last_step(tiny_model_dir: Path) -> None:
    from models.loader import load_backend

    threads: set[int] = set()

    def loading(cfg: EngineConfig, progress: Callable[[str], None]) -> object:
        threads.add(threading.get_ident())
        backend = load_backend(cfg, progress)
        backend.model.register_forward_pre_hook(lambda *args: threads.add(threading.get_ident()))
        return backend

    async with Engine(tiny_config(tiny_model_dir, warmup=True), backend_factory=loading) as engine:  # type: ignore[arg-type]
        greedy = GenerationParams(max_new_tokens=5, temperature=0.0, seed=0)
        ends = await asyncio.gather(*(engine.submit(GenerationRequest(p, greedy, user_key=p)).wait()
                                      for p in ("one", "two", "three")))
    assert all(isinstance(end, Done) for end in ends)
    assert len(threads) == 1 and threading.get_ident() not in threads  # loading, warm-up, prefill, decode
