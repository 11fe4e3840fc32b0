"""Faults a real vLLM will not produce on demand (401, 429/503, a silent stream), from a tiny aiohttp server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from aiohttp import web

from models.engine import Engine
from models.errors import ModelLoadError
from models.types import Done, EngineConfig, Failed, GenerationParams, GenerationRequest, ParamLimits
from tests.remote.conftest import _free_port

pytestmark = pytest.mark.timeout(60)

KEY = "sk-test-do-not-log-me"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stub:
    """What the stub answers to ``/v1/completions``: ``plan`` pops one status per request (200 streams)."""

    plan: list[int] = field(default_factory=list)
    retry_after: str = "1"
    silent_after_first: bool = False
    context: int | None = 512  # max_model_len listed by /v1/models (None: not listed)
    prompt_tokens: int = 3  # the usage.prompt_tokens it reports
    seen: list[float] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # set at teardown: a silent stream ends


def chunk(text: str, finish: str | None, tokens: int, prompt_tokens: int = 3) -> bytes:
    body = {"choices": [{"index": 0, "text": text, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": tokens}}
    return f"data: {json.dumps(body)}\n\n".encode()


def make_app(stub: Stub) -> web.Application:
    def authorized(request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {KEY}"

    async def models(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": {"message": "Unauthorized"}}, status=401)
        listed = {"id": "stub"} if stub.context is None else {"id": "stub", "max_model_len": stub.context}
        return web.json_response({"data": [listed]})

    async def completions(request: web.Request) -> web.StreamResponse:
        stub.seen.append(time.monotonic())
        stub.bodies.append(await request.json())
        status = stub.plan.pop(0) if stub.plan else 200
        if status == 400:
            error = {"message": "top_k must be -1 (disable), or at least 1, got 0.", "param": "top_k"}
            return web.json_response({"error": error}, status=400)
        if status != 200:
            return web.json_response({"error": {"message": "busy"}}, status=status,
                                     headers={"Retry-After": stub.retry_after})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(chunk("Hello", None, 1, stub.prompt_tokens))
        if stub.silent_after_first:
            await stub.release.wait()
        await response.write(chunk(" world", "length", 2, stub.prompt_tokens))
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    return app


@pytest.fixture
async def stub_url(stub: Stub) -> AsyncIterator[str]:
    runner = web.AppRunner(make_app(stub))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/v1"
    stub.release.set()
    await runner.cleanup()


@pytest.fixture
def stub() -> Stub:
    return Stub()


def config(url: str, **overrides: object) -> EngineConfig:
    return EngineConfig(inference_url=url, inference_api_key=KEY, max_batch_size=4, warmup=False,
                        inference_timeout_s=2.0, **overrides)  # type: ignore[arg-type]


async def generate(engine: Engine) -> Done | Failed:
    handle = engine.submit(GenerationRequest("Say", GenerationParams(max_new_tokens=2, temperature=0.0)))
    event = await asyncio.wait_for(handle.wait(), 30)
    assert isinstance(event, (Done, Failed)), event
    return event


async def test_the_key_is_sent_as_bearer_and_a_wrong_one_is_named_but_never_shown(
    stub_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Engine(config(stub_url)) as engine:
        assert engine.status().model_name == "stub"
        done = await generate(engine)
    assert isinstance(done, Done) and done.result.texts == ("Hello world",)
    wrong = EngineConfig(inference_url=stub_url, inference_api_key="sk-wrong-secret", warmup=False)
    with pytest.raises(ModelLoadError, match="INFERENCE_API_KEY") as raised:
        async with Engine(wrong):
            pass
    assert "sk-wrong-secret" not in str(raised.value) and "sk-wrong-secret" not in repr(wrong)
    assert KEY not in caplog.text and "sk-wrong-secret" not in caplog.text


async def test_429_is_retried_once_after_retry_after(stub: Stub, stub_url: str) -> None:
    stub.plan = [429]
    async with Engine(config(stub_url)) as engine:
        done = await generate(engine)
    assert isinstance(done, Done), done
    assert len(stub.seen) == 2 and stub.seen[1] - stub.seen[0] >= 0.9


async def test_503_twice_fails_the_request_with_a_reason(stub: Stub, stub_url: str) -> None:
    stub.plan = [503, 503]
    async with Engine(config(stub_url)) as engine:
        failed = await generate(engine)
        assert isinstance(failed, Failed) and "unavailable" in failed.reason, failed
        assert isinstance(await generate(engine), Done)  # the next one is served


async def test_a_retry_after_too_long_to_wait_fails_at_once(stub: Stub, stub_url: str) -> None:
    stub.plan, stub.retry_after = [429], "600"
    async with Engine(config(stub_url)) as engine:
        failed = await generate(engine)
    assert isinstance(failed, Failed) and "busy" in failed.reason and len(stub.seen) == 1


async def test_a_server_that_stops_answering_mid_stream_fails_after_the_timeout(stub: Stub, stub_url: str) -> None:
    stub.silent_after_first = True
    began = time.monotonic()
    async with Engine(config(stub_url)) as engine:
        failed = await generate(engine)
    assert isinstance(failed, Failed) and "did not answer for 2 s" in failed.reason, failed
    assert time.monotonic() - began < 10


async def test_a_parameter_the_server_refuses_is_named_in_the_reason(stub: Stub, stub_url: str) -> None:
    stub.plan = [400]
    async with Engine(config(stub_url)) as engine:
        failed = await generate(engine)
        assert isinstance(failed, Failed), failed
        assert failed.reason.startswith("the inference server refused the request parameter top_k: top_k must be")
        assert isinstance(await generate(engine), Done)  # the next one is served


async def test_a_server_listing_its_context_is_asked_to_keep_the_prompts_end(stub: Stub, stub_url: str) -> None:
    stub.prompt_tokens = 510  # the stub says the prompt filled the room left beside 2 new tokens: truncated
    async with Engine(config(stub_url)) as engine:
        truncated = await generate(engine)
    async with Engine(config(stub_url, prompt_overflow="reject")) as engine:
        rejecting = await generate(engine)
    stub.context = None
    async with Engine(config(stub_url)) as engine:
        unlisted = await generate(engine)
    assert isinstance(truncated, Done) and truncated.result.prompt_truncated
    assert isinstance(rejecting, Done) and not rejecting.result.prompt_truncated
    assert isinstance(unlisted, Done) and not unlisted.result.prompt_truncated
    asked = [{k: body.get(k) for k in ("truncate_prompt_tokens", "truncation_side")} for body in stub.bodies]
    assert asked == [{"truncate_prompt_tokens": 510, "truncation_side": "left"},
                     {"truncate_prompt_tokens": None, "truncation_side": None},
                     {"truncate_prompt_tokens": None, "truncation_side": None}]


async def test_max_new_tokens_that_fill_the_listed_context_fail_without_asking_the_server(
    stub: Stub, stub_url: str,
) -> None:
    params = GenerationParams(max_new_tokens=512, temperature=0.0)
    async with Engine(config(stub_url, limits=ParamLimits(max_new_tokens=1024))) as engine:
        failed = await asyncio.wait_for(engine.submit(GenerationRequest("Say", params)).wait(), 30)
    assert isinstance(failed, Failed), failed
    assert failed.reason == "max_new_tokens=512 leaves no room for a prompt in this model's context of 512 tokens"
    assert stub.bodies == []


async def test_generate_cli_streams_from_the_server_without_importing_torch(stub_url: str, tmp_path: Path) -> None:
    script = (
        "import sys\nfrom bot.cli import main\n"
        "code = main(['--env-file', 'absent.env', 'generate', 'Say', '--temperature', '0'])\n"
        "print('torch loaded:', 'torch' in sys.modules, file=sys.stderr)\nsys.exit(code)\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "INFERENCE_URL": stub_url, "INFERENCE_API_KEY": KEY,
           "DATABASE_PATH": str(tmp_path / "log.db"), "PYTHONPATH": str(REPO_ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("Hello world")
    assert "torch loaded: False" in stderr.decode() and KEY not in stderr.decode()


async def test_doctor_shows_the_servers_model_and_context_or_why_it_is_unreachable(
    stub_url: str, tmp_path: Path
) -> None:
    from bot.terminal.doctor import run_checks

    def server_row(url: str) -> tuple[str, str]:
        environ = {"INFERENCE_URL": url, "INFERENCE_API_KEY": KEY, "DATABASE_PATH": str(tmp_path / "log.db")}
        rows = [r for r in run_checks(None, environ) if r.check == "inference server"]
        assert len(rows) == 1 and all(r.check != "model" for r in run_checks(None, environ))
        return rows[0].status, rows[0].detail

    status, detail = await asyncio.to_thread(server_row, stub_url)
    assert status == "OK" and "serves stub, context 512 tokens" in detail and KEY not in detail
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    status, detail = await asyncio.to_thread(server_row, dead)
    assert status == "FAIL" and "cannot reach the inference server" in detail


async def test_the_endpoint_probe_says_up_or_why_not(stub_url: str) -> None:
    from models.remote import probe_endpoint

    up = await probe_endpoint(config(stub_url))
    assert up.up and up.detail == "serves stub, context 512 tokens"
    wrong_key = await probe_endpoint(replace(config(stub_url), inference_api_key="sk-nope"))
    assert not wrong_key.up and "INFERENCE_API_KEY" in wrong_key.detail and "sk-nope" not in wrong_key.detail
    dead = await probe_endpoint(config(f"http://127.0.0.1:{_free_port()}/v1"))
    assert not dead.up and "cannot reach the inference server" in dead.detail
