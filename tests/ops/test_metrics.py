"""The Prometheus endpoint serves what the bot observed, and /healthz drives the container health check."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.config import load_settings
from bot.ops.healthcheck import probe, probe_url
from bot.ops.metrics import Metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def served() -> AsyncIterator[tuple[Metrics, str]]:
    metrics = Metrics()
    port = free_port()
    await metrics.start("127.0.0.1", port)
    try:
        yield metrics, f"http://127.0.0.1:{port}"
    finally:
        await metrics.stop()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def sample(text: str, name: str) -> float:
    """The value of the sample line starting with ``name`` (labels included)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics:\n{text}")


async def test_metrics_endpoint_serves_request_counts_times_and_engine_state(served: tuple[Metrics, str]) -> None:
    metrics, base = served
    metrics.observe_request("done", queue_s=0.4, generation_s=1.5, tokens=48)
    metrics.observe_request("done", queue_s=0.1, generation_s=0.5, tokens=16)
    metrics.observe_request("rejected", queue_s=None, generation_s=None)
    metrics.set_engine(queue_depth=3, running=2, tokens_per_s=41.5)

    status, content_type, text = await get(base + "/metrics")

    assert status == 200 and content_type.startswith("text/plain")
    assert sample(text, 'continuebot_requests_total{status="done"}') == 2
    assert sample(text, 'continuebot_requests_total{status="rejected"}') == 1
    assert sample(text, 'continuebot_requests_total{status="failed"}') == 0  # present before any failure
    assert sample(text, "continuebot_generated_tokens_total") == 64
    assert sample(text, "continuebot_queue_wait_seconds_count") == 2  # rejected had no queue time
    assert sample(text, "continuebot_queue_wait_seconds_sum") == pytest.approx(0.5)
    assert sample(text, 'continuebot_generation_seconds_bucket{le="1.0"}') == 1
    assert sample(text, "continuebot_generation_seconds_count") == 2
    assert sample(text, "continuebot_queue_depth") == 3
    assert sample(text, "continuebot_running_batch_size") == 2
    assert sample(text, "continuebot_tokens_per_second") == 41.5


async def test_two_metrics_objects_do_not_share_counters() -> None:
    first, second = Metrics(), Metrics()
    first.observe_request("done", 0.1, 0.2, 5)
    assert b'continuebot_requests_total{status="done"} 1.0' in first.render()
    assert b'continuebot_requests_total{status="done"} 0.0' in second.render()


async def test_healthz_is_503_until_the_bot_says_it_is_ready(served: tuple[Metrics, str]) -> None:
    metrics, base = served
    assert (await get(base + "/healthz"))[0] == 503
    metrics.set_health(True, "connected, model loaded")
    status, _, text = await get(base + "/healthz")
    assert (status, text.strip()) == (200, "connected, model loaded")
    metrics.set_health(False, "model worker died")
    status, _, text = await get(base + "/healthz")
    assert (status, text.strip()) == (503, "model worker died")


async def test_healthz_is_503_while_the_inference_server_is_down(served: tuple[Metrics, str]) -> None:
    metrics, base = served
    metrics.set_health(True, "connected to Discord")
    assert b"inference_server_up" not in metrics.render()  # no series without INFERENCE_URL
    metrics.set_inference(False, "cannot reach the inference server at http://gpu:8000/v1")
    status, _, text = await get(base + "/healthz")
    assert status == 503 and "inference server down: cannot reach" in text
    assert b"continuebot_inference_server_up 0.0" in metrics.render()
    metrics.set_inference(True, "serves smollm2, context 2048 tokens")
    status, _, text = await get(base + "/healthz")
    assert status == 200 and "inference server up: serves smollm2" in text
    assert b"continuebot_inference_server_up 1.0" in metrics.render()


async def test_health_probe_reports_what_the_endpoint_says(served: tuple[Metrics, str], monkeypatch) -> None:
    metrics, base = served
    port = int(base.rsplit(":", 1)[1])
    settings = load_settings({"METRICS_PORT": str(port), "METRICS_HOST": "0.0.0.0"}, env_file=None)
    url = probe_url(settings)
    assert url == f"http://127.0.0.1:{port}/healthz"
    assert await asyncio.to_thread(probe, url) == (False, "starting")
    metrics.set_health(True, "ready")
    assert await asyncio.to_thread(probe, url) == (True, "ready")


async def test_health_probe_fails_when_nothing_listens() -> None:
    healthy, detail = await asyncio.to_thread(probe, f"http://127.0.0.1:{free_port()}/healthz", 2.0)
    assert not healthy and "no answer" in detail


async def test_port_zero_serves_nothing_and_stop_closes_the_port() -> None:
    metrics = Metrics()
    await metrics.start("127.0.0.1", 0)  # metrics off: must not bind anything
    await metrics.stop()
    port = free_port()
    await metrics.start("127.0.0.1", port)
    await metrics.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(f"http://127.0.0.1:{port}/metrics")
    assert probe_url(load_settings({}, env_file=None)) is None
