"""The engine driving a real vLLM server through RemoteBackend: text, cancel, faults, a crowd, a crash."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from models.engine import Engine
from models.errors import ModelLoadError, TooManyPending
from models.handle import RequestHandle
from models.loader import resolve_source
from models.types import (
    Delta,
    Done,
    EngineConfig,
    Failed,
    GenerationParams,
    GenerationRequest,
    ParamLimits,
    Started,
)
from tests.remote.conftest import SERVED_NAME, VllmServer, _free_port

pytestmark = pytest.mark.timeout(600)  # the first test waits for the server to start (minutes on a small box)

PROMPT = "The old lighthouse keeper climbed the stairs and"
LONG_PROMPT = " ".join(f"Line {i}: the tide came in and went out again." for i in range(300))  # ~3,900 tokens
RUNNING = re.compile(r"^vllm:num_requests_running\{[^}]*\}\s+([0-9.]+)", re.MULTILINE)


def config(server: VllmServer, **overrides: object) -> EngineConfig:
    base = EngineConfig(inference_url=server.url, max_batch_size=8, max_queue_size=64, max_pending_per_user=4,
                        request_timeout_s=120.0, inference_timeout_s=20.0)
    return replace(base, **overrides)  # type: ignore[arg-type]


def greedy(max_new_tokens: int) -> GenerationParams:
    return GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=1)


def server_completion(server: VllmServer, prompt: str | list[int], max_tokens: int) -> str:
    """The server's own greedy completion, asked for plainly (no streaming, no engine)."""
    body = json.dumps({"model": SERVED_NAME, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}).encode()
    request = urllib.request.Request(f"{server.url}/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as resp:
        return str(json.load(resp)["choices"][0]["text"])


def running_requests(server: VllmServer) -> float:
    return sum(float(v) for v in RUNNING.findall(server.get("/metrics")))


def settles_to_zero(server: VllmServer, within_s: float) -> bool:
    """Whether the server's running-request gauge reaches 0 within ``within_s``."""
    deadline = time.monotonic() + within_s
    while running_requests(server) > 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


async def final(handle: RequestHandle) -> Done | Failed:
    event = await asyncio.wait_for(handle.wait(), 120)
    assert isinstance(event, (Done, Failed)), event
    return event


async def test_greedy_text_equals_the_servers_own_completion(vllm_server: VllmServer) -> None:
    async with Engine(config(vllm_server)) as engine:
        status = engine.status()
        assert (status.model_name, status.dtype) == (SERVED_NAME, "server")
        assert status.device == f"remote: 127.0.0.1:{vllm_server.port}"
        handle = engine.submit(GenerationRequest(PROMPT, greedy(24)))
        deltas = []
        async for event in handle:
            if isinstance(event, Delta):
                deltas.append(event.text)
            last = event
    assert isinstance(last, Done), last
    expected = server_completion(vllm_server, PROMPT, 24)
    assert last.result.texts == (expected,)
    assert "".join(deltas) == expected and len(deltas) > 1  # streamed, not delivered at the end
    assert last.result.completion_tokens == (24,) and last.result.prompt_tokens > 5


async def test_variants_differ_and_each_streams_its_own_text(vllm_server: VllmServer) -> None:
    params = GenerationParams(max_new_tokens=16, temperature=1.0, seed=7, variants=3)
    async with Engine(config(vllm_server)) as engine:
        first = await final(engine.submit(GenerationRequest(PROMPT, params)))
        again = await final(engine.submit(GenerationRequest(PROMPT, params)))
    assert isinstance(first, Done) and isinstance(again, Done)
    assert len(set(first.result.texts)) == 3  # seed + variant: three different continuations
    assert again.result.texts == first.result.texts  # the same seed gives the same texts


async def test_cancel_mid_stream_aborts_the_request_at_the_server(vllm_server: VllmServer) -> None:
    async with Engine(config(vllm_server)) as engine:
        handle = engine.submit(GenerationRequest(PROMPT, GenerationParams(max_new_tokens=256, temperature=0.8)))
        async for event in handle:
            if isinstance(event, Delta):
                break
        assert running_requests(vllm_server) >= 1
        handle.cancel()
        assert await asyncio.to_thread(settles_to_zero, vllm_server, 15.0)
        assert engine.status().running == 0


async def test_max_new_tokens_over_the_context_fails_naming_the_limit(vllm_server: VllmServer) -> None:
    limits = ParamLimits(max_new_tokens=4096)
    async with Engine(config(vllm_server, limits=limits)) as engine:
        refused = await final(engine.submit(GenerationRequest(PROMPT, greedy(3000))))  # > max_model_len 2048
        fine = await final(engine.submit(GenerationRequest(PROMPT, greedy(4))))
    assert isinstance(refused, Failed), refused
    assert "max_new_tokens=3000 leaves no room for a prompt in this model's context of 2048 tokens" in refused.reason
    assert isinstance(fine, Done)  # the engine goes on


async def test_a_model_the_server_does_not_serve_is_a_clear_load_error(vllm_server: VllmServer) -> None:
    with pytest.raises(ModelLoadError, match="does not serve INFERENCE_MODEL='nope'.*smollm2"):
        async with Engine(config(vllm_server, inference_model="nope")):
            pass


async def test_no_server_at_the_url_is_a_clear_load_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with pytest.raises(ModelLoadError, match="cannot reach the inference server"):
        async with Engine(EngineConfig(inference_url=url, inference_timeout_s=5.0)):
            pass


async def test_sixty_four_requests_share_the_server_round_robin_within_per_user_limits(
    vllm_server: VllmServer,
) -> None:
    users = [f"user{i}" for i in range(16)]
    params = GenerationParams(max_new_tokens=8, temperature=0.0, seed=3)
    async with Engine(config(vllm_server, max_queue_size=128)) as engine:  # 8 rows at the server, 4 per user
        handles = [engine.submit(GenerationRequest(f"{PROMPT} {u}", params, user_key=u)) for u in users for _ in range(4)]
        for user in users:  # each user's fifth is refused, whoever asks
            with pytest.raises(TooManyPending):
                engine.submit(GenerationRequest(PROMPT, params, user_key=user))
        started: list[tuple[float, str]] = []

        async def follow(handle: RequestHandle) -> Done | Failed:
            async for event in handle:
                if isinstance(event, Started):
                    started.append((time.monotonic(), handle.request.user_key))
                if isinstance(event, (Done, Failed)):
                    return event
            raise AssertionError("no final event")

        results = await asyncio.wait_for(asyncio.gather(*map(follow, handles)), 420)
        assert engine.status().running == 0
    assert all(isinstance(r, Done) and r.result.completion_tokens == (8,) for r in results), results
    order = [user for _, user in sorted(started)]
    rounds = [sorted(order[i:i + len(users)]) for i in range(0, len(order), len(users))]
    assert rounds == [sorted(users)] * 4  # round-robin: every user's k-th request before anyone's (k+1)-th


async def test_a_prompt_over_the_context_keeps_its_end_like_the_in_process_model(
    vllm_server: VllmServer, smollm2_cache_dir: Path,
) -> None:
    from transformers import AutoTokenizer

    model_dir = resolve_source(EngineConfig(cache_dir=smollm2_cache_dir), lambda message: None).location
    ids = AutoTokenizer.from_pretrained(model_dir)(LONG_PROMPT)["input_ids"]
    room = 2048 - 16
    assert len(ids) > 2048
    limits = ParamLimits(max_prompt_chars=len(LONG_PROMPT))
    async with Engine(config(vllm_server, limits=limits)) as engine:
        done = await final(engine.submit(GenerationRequest(LONG_PROMPT, greedy(16))))
    async with Engine(config(vllm_server, limits=limits, prompt_overflow="reject")) as engine:
        refused = await final(engine.submit(GenerationRequest(LONG_PROMPT, greedy(16))))
    assert isinstance(done, Done), done
    assert done.result.prompt_truncated and done.result.prompt_tokens == room
    assert done.result.texts == (server_completion(vllm_server, ids[-room:], 16),)  # the prompt's last tokens
    assert isinstance(refused, Failed), refused
    assert "the prompt is too long for this model's context of 2048 tokens" in refused.reason


async def test_server_killed_mid_request_fails_it_and_the_engine_recovers(vllm_server: VllmServer) -> None:
    async with Engine(config(vllm_server, inference_timeout_s=10.0)) as engine:
        handle = engine.submit(GenerationRequest(PROMPT, GenerationParams(max_new_tokens=256)))
        async for event in handle:
            if isinstance(event, Delta):
                break
        vllm_server.kill()
        failed = await final(handle)
        assert isinstance(failed, Failed) and "inference server" in failed.reason, failed
        down = await final(engine.submit(GenerationRequest(PROMPT, greedy(4))))
        assert isinstance(down, Failed) and "cannot be reached" in down.reason, down
        await asyncio.to_thread(vllm_server.start)
        back = await final(engine.submit(GenerationRequest(PROMPT, greedy(8))))
    assert isinstance(back, Done), back
    assert back.result.texts == (server_completion(vllm_server, PROMPT, 8),)
