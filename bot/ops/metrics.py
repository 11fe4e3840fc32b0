"""Prometheus metrics (own registry) and a health endpoint, served by aiohttp when METRICS_PORT is set."""

from __future__ import annotations

import logging
import math

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from storage.types import FINAL_STATUSES

log = logging.getLogger(__name__)

QUEUE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
GENERATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class Metrics:
    """The bot's metrics; ``start`` serves ``/metrics`` and ``/healthz`` until ``stop``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ns = "continuebot"
        self.requests = Counter(
            "requests", "Requests finished, by final status", ["status"], namespace=ns, registry=self.registry
        )
        for status in FINAL_STATUSES:
            self.requests.labels(status=status)  # every series exists from the start, at 0
        self.generated_tokens = Counter(
            "generated_tokens", "Tokens generated, all variants", namespace=ns, registry=self.registry
        )
        self.queue_wait = Histogram(
            "queue_wait_seconds", "Time from submit to start", namespace=ns, registry=self.registry,
            buckets=QUEUE_BUCKETS,
        )
        self.generation = Histogram(
            "generation_seconds", "Time from start to the last token", namespace=ns, registry=self.registry,
            buckets=GENERATION_BUCKETS,
        )
        self.queue_depth = Gauge("queue_depth", "Requests waiting", namespace=ns, registry=self.registry)
        self.running = Gauge(
            "running_batch_size", "Requests in the running batch", namespace=ns, registry=self.registry
        )
        self.tokens_per_second = Gauge(
            "tokens_per_second", "Recent generation speed, all requests together", namespace=ns,
            registry=self.registry,
        )
        self.gateway_latency = Gauge(
            "gateway_latency_seconds", "Heartbeat round trip of each gateway shard this process runs", ["shard"],
            namespace=ns, registry=self.registry,
        )
        self.healthy = False
        self.health_detail = "starting"
        self.inference: tuple[bool, str] | None = None  # (up, detail) of INFERENCE_URL; None: in-process model
        self._inference_up: Gauge | None = None
        self._runner: web.AppRunner | None = None

    def observe_request(
        self, status: str, queue_s: float | None, generation_s: float | None, tokens: int = 0
    ) -> None:
        """Count one finished request; times that are unknown (e.g. rejected at once) are None."""
        self.requests.labels(status=status).inc()
        if queue_s is not None:
            self.queue_wait.observe(queue_s)
        if generation_s is not None:
            self.generation.observe(generation_s)
        if tokens:
            self.generated_tokens.inc(tokens)

    def set_engine(self, queue_depth: int, running: int, tokens_per_s: float | None) -> None:
        """Record the engine's current state (call on every status change or periodically)."""
        self.queue_depth.set(queue_depth)
        self.running.set(running)
        self.tokens_per_second.set(tokens_per_s or 0.0)

    def set_latencies(self, latencies: list[tuple[int, float]]) -> None:
        """Each shard's gateway latency in seconds (a shard not connected yet has none, so no sample)."""
        for shard, seconds in latencies:
            if math.isfinite(seconds):
                self.gateway_latency.labels(shard=str(shard)).set(seconds)

    def set_health(self, healthy: bool, detail: str) -> None:
        """What ``/healthz`` answers: 200 when healthy, else 503; ``detail`` is its body."""
        self.healthy = healthy
        self.health_detail = detail

    def set_inference(self, up: bool, detail: str) -> None:
        """The remote inference server's health: ``/healthz`` is 503 while it is down, with ``detail``."""
        if self._inference_up is None:  # the series exists only when a server is used
            self._inference_up = Gauge(
                "inference_server_up", "1 when INFERENCE_URL answers and serves the model", namespace="continuebot",
                registry=self.registry,
            )
        self._inference_up.set(1 if up else 0)
        self.inference = (up, detail)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on ``host:port``; port 0 means metrics are off and nothing is served."""
        if port == 0 or self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("metrics on http://%s:%d/metrics", host, port)

    async def stop(self) -> None:
        """Stop serving (safe to call when not started)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, request: web.Request) -> web.Response:
        healthy, detail = self.healthy, self.health_detail
        if self.inference is not None:
            healthy = healthy and self.inference[0]
            detail += f"; inference server {'up' if self.inference[0] else 'down'}: {self.inference[1]}"
        return web.Response(text=detail + "\n", status=200 if healthy else 503)
