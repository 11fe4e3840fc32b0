"""Inference benchmark: the engine against one ``model.generate`` per request, on the same model and prompts.

Run from the repository root:  .venv/bin/python benchmarks/inference.py [--json]
Smoke run (seconds):          .venv/bin/python benchmarks/inference.py --requests 3 --max-new-tokens 6

Scenarios: a burst of N requests at once, and staggered arrivals (one every --interval s). Methods:
``baseline`` (the seed system: one ``model.generate`` per request, in arrival order, in a worker
thread), ``engine`` (iteration-level batching), with --compare-static ``static`` (the engine
admitting only when its batch is empty) and, with --compare-generate-batch, ``generate_batch``
(burst only: transformers' own static batching, one ``model.generate`` of every prompt at once,
left-padded; a shared RNG, so no per-request replay: a yardstick for what batching can give on
this machine, not a product method). Targets: burst tok/s >= 8x baseline, staggered mean
latency <= 0.25x baseline, event-loop lag p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks._common import (  # noqa: E402
    LoopLagTicker, format_table, mean, percentile, ratio_and_target_lines, run_model_benchmark,
)
from models.backend import Backend  # noqa: E402
from models.engine import Engine  # noqa: E402
from models.loader import load_backend  # noqa: E402
from models.types import Delta, Done, EngineConfig, GenerationParams, GenerationRequest, ParamLimits  # noqa: E402

PROMPTS = (
    "The lighthouse keeper opened the door and",
    "Once upon a time, in a village at the edge of the forest,",
    "The recipe for a perfect cup of tea begins with",
    "In the year 2150, the first colony on Mars",
    "My favourite thing about autumn is",
    "The detective looked at the muddy footprints and said",
    "Here are three tips for learning a new language:",
    "The old map showed a path through the mountains that",
    "When the robot woke up for the first time, it",
    "The best way to start a morning is",
    "Dear diary, today something strange happened:",
    "The history of the bicycle starts in",
    "She opened the letter, and the first line read",
    "To build a small wooden boat, you will need",
    "The city at night was quiet except for",
    "Scientists have discovered a new species of",
)
TARGET_BURST_SPEEDUP = 8.0
TARGET_STAGGERED_LATENCY = 0.25
TARGET_LAG_P99_MS = 10.0


@dataclass
class Sample:
    """One request's timing, in seconds from the scenario's start."""

    arrival: float
    first_text: float | None = None
    finished: float | None = None
    tokens: int = 0


@dataclass
class RunResult:
    scenario: str
    method: str
    samples: list[Sample]
    lag_p99_ms: float | None
    lag_max_ms: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        done = [s for s in self.samples if s.finished is not None]
        wall = max(s.finished for s in done) - min(s.arrival for s in self.samples) if done else None
        tokens = sum(s.tokens for s in done)
        latencies = [s.finished - s.arrival for s in done]
        firsts = [s.first_text - s.arrival for s in done if s.first_text is not None]
        return {
            "scenario": self.scenario,
            "method": self.method,
            "requests": len(done),
            "tokens": tokens,
            "wall_s": wall,
            "tok_per_s": tokens / wall if wall else None,
            "mean_latency_s": mean(latencies),
            "p95_latency_s": percentile(latencies, 95),
            "mean_first_text_s": mean(firsts),
            "p95_first_text_s": percentile(firsts, 95),
            "loop_lag_p99_ms": self.lag_p99_ms,
            "loop_lag_max_ms": self.lag_max_ms,
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="MODEL_NAME (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--cache-dir", type=Path, default=Path("model-cache"), help="MODEL_CACHE_DIR")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between staggered arrivals")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--scenarios", default="burst,staggered")
    parser.add_argument("--compare-static", action="store_true", help="also run the static-batch policy")
    parser.add_argument("--compare-generate-batch", action="store_true",
                        help="burst: also run one model.generate over every prompt at once (the batching yardstick)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the app's default, every core but one)")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def arrivals(scenario: str, n: int, interval: float) -> list[float]:
    return [0.0] * n if scenario == "burst" else [i * interval for i in range(n)]


def requests_for(n: int, params: GenerationParams) -> list[GenerationRequest]:
    return [
        GenerationRequest(PROMPTS[i % len(PROMPTS)], replace(params, seed=1000 + i), user_key=f"user{i}")
        for i in range(n)
    ]


# -- baseline: one model.generate per request, in arrival order ---------------------------------


def generate_once(backend: Backend, request: GenerationRequest) -> int:
    """The seed system's method: a plain ``model.generate`` for one request; returns new tokens."""
    p = request.params
    tokenizer, model = backend.tokenizer, backend.model
    inputs = tokenizer(request.prompt, return_tensors="pt").to(model.device)
    torch.manual_seed(p.seed or 0)
    with torch.inference_mode():
        out = model.generate(
            **inputs, max_new_tokens=p.max_new_tokens, repetition_penalty=p.repetition_penalty,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id, **_sampling(p),
        )
    return int(out.shape[1] - inputs["input_ids"].shape[1])


def _sampling(p: GenerationParams) -> dict[str, Any]:
    if p.temperature > 0:
        return dict(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k)
    return {"do_sample": False}


def generate_batch(backend: Backend, reqs: list[GenerationRequest]) -> list[int]:
    """One ``model.generate`` over every prompt, left-padded; returns each row's new tokens up to its end token."""
    tokenizer, model = backend.tokenizer, backend.model
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = [tokenizer(r.prompt)["input_ids"] for r in reqs]
    width = max(len(ids) for ids in encoded)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=model.device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=model.device)
    p = reqs[0].params
    torch.manual_seed(p.seed or 0)
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=p.max_new_tokens,
                             repetition_penalty=p.repetition_penalty, pad_token_id=pad, **_sampling(p))
    counts = []
    for row in out[:, width:].tolist():
        stop = next((i for i, token in enumerate(row) if token in backend.eos_ids), None)
        counts.append(len(row) if stop is None else stop + 1)
    return counts


async def run_generate_batch(backend: Backend, reqs: list[GenerationRequest]) -> RunResult:
    loop = asyncio.get_running_loop()
    samples = [Sample(arrival=0.0) for _ in reqs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        async with LoopLagTicker() as lag:
            start = loop.time()
            counts = await loop.run_in_executor(pool, generate_batch, backend, reqs)
            end = loop.time() - start
    for sample, count in zip(samples, counts):
        sample.tokens, sample.finished, sample.first_text = count, end, end
    return RunResult("burst", "generate_batch", samples, lag.p99_ms, lag.max_ms)


async def run_baseline(backend: Backend, scenario: str, reqs: list[GenerationRequest], times: list[float]) -> RunResult:
    loop = asyncio.get_running_loop()
    samples = [Sample(arrival=t) for t in times]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        async with LoopLagTicker() as lag:
            start = loop.time()
            for request, sample in zip(reqs, samples):
                await asyncio.sleep(max(0.0, start + sample.arrival - loop.time()))
                sample.tokens = await loop.run_in_executor(pool, generate_once, backend, request)
                sample.finished = sample.first_text = loop.time() - start  # no streaming: text comes at the end
    return RunResult(scenario, "baseline", samples, lag.p99_ms, lag.max_ms)


# -- the engine ---------------------------------------------------------------------------------


async def run_engine(
    backend: Backend, config: EngineConfig, policy: str, scenario: str,
    reqs: list[GenerationRequest], times: list[float],
) -> RunResult:
    loop = asyncio.get_running_loop()
    samples = [Sample(arrival=t) for t in times]
    method = "engine" if policy == "continuous" else "static"
    engine = Engine(config, backend_factory=lambda cfg, progress: backend, batching=policy)  # type: ignore[arg-type]
    async with engine:
        async with LoopLagTicker() as lag:
            start = loop.time()

            async def one(request: GenerationRequest, sample: Sample) -> None:
                await asyncio.sleep(max(0.0, start + sample.arrival - loop.time()))
                async for event in engine.submit(request):
                    if isinstance(event, Delta) and sample.first_text is None:
                        sample.first_text = loop.time() - start
                    elif isinstance(event, Done):
                        sample.finished = loop.time() - start
                        sample.tokens = sum(event.result.completion_tokens)

            await asyncio.gather(*(one(r, s) for r, s in zip(reqs, samples)))
        tokens_per_s = engine.status().tokens_per_s
    return RunResult(scenario, method, samples, lag.p99_ms, lag.max_ms, {"engine_tokens_per_s": tokens_per_s})


# -- report -------------------------------------------------------------------------------------


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    base = {r["scenario"]: r for r in rows if r["method"] == "baseline"}
    for row in rows:
        b = base.get(row["scenario"])
        if row["method"] == "baseline" or b is None:
            continue
        out.append({
            "scenario": row["scenario"],
            "method": row["method"],
            "tok_per_s_x": row["tok_per_s"] / b["tok_per_s"] if b["tok_per_s"] else None,
            "mean_latency_x": row["mean_latency_s"] / b["mean_latency_s"] if b["mean_latency_s"] else None,
            "p95_latency_x": row["p95_latency_s"] / b["p95_latency_s"] if b["p95_latency_s"] else None,
            "first_text_x": row["mean_first_text_s"] / b["mean_first_text_s"] if b["mean_first_text_s"] else None,
        })
    return out


def targets(rows: list[dict[str, Any]], ratio_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = {(r["scenario"], r["method"]): r for r in ratio_rows}
    checks = []
    burst = found.get(("burst", "engine"))
    if burst:
        value = burst["tok_per_s_x"]
        checks.append({"target": f"burst tok/s >= {TARGET_BURST_SPEEDUP:g}x baseline", "measured": value,
                       "met": value is not None and value >= TARGET_BURST_SPEEDUP})
    staggered = found.get(("staggered", "engine"))
    if staggered:
        value = staggered["mean_latency_x"]
        checks.append({"target": f"staggered mean latency <= {TARGET_STAGGERED_LATENCY:g}x baseline",
                       "measured": value, "met": value is not None and value <= TARGET_STAGGERED_LATENCY})
    lags = [r["loop_lag_p99_ms"] for r in rows if r["method"] == "engine" and r["loop_lag_p99_ms"] is not None]
    if lags:
        checks.append({"target": f"engine loop lag p99 < {TARGET_LAG_P99_MS:g} ms", "measured": max(lags),
                       "met": max(lags) < TARGET_LAG_P99_MS})
    return checks


def render(report: dict[str, Any]) -> str:
    cols = ["scenario", "method", "requests", "tokens", "wall_s", "tok_per_s", "mean_latency_s",
            "p95_latency_s", "mean_first_text_s", "loop_lag_p99_ms", "loop_lag_max_ms"]
    parts = [f"model {report['model']} on {report['device']} ({report['dtype']}), torch threads "
             f"{report['threads']}; {report['settings']}", "", format_table(report["results"], cols)]
    return "\n".join(parts + ratio_and_target_lines(report))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    limits = ParamLimits(max_new_tokens=max(args.max_new_tokens, 1))
    config = EngineConfig(
        model_name=args.model, device=args.device, cache_dir=args.cache_dir, max_batch_size=args.max_batch_size,
        max_queue_size=max(64, args.requests), max_pending_per_user=args.requests, request_timeout_s=3600.0,
        limits=limits, warmup=False, torch_threads=args.threads,
    )
    progress = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    backend = load_backend(config, progress)
    backend.warmup()
    generate_once(backend, GenerationRequest("Hello", GenerationParams(max_new_tokens=2, seed=0)))
    params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    policies = ["continuous", "static"] if args.compare_static else ["continuous"]
    results: list[RunResult] = []
    for scenario in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        reqs, times = requests_for(args.requests, params), arrivals(scenario, args.requests, args.interval)
        if not args.skip_baseline:
            progress(f"{scenario}: baseline ...")
            results.append(await run_baseline(backend, scenario, reqs, times))
        for policy in policies:
            progress(f"{scenario}: engine ({policy}) ...")
            results.append(await run_engine(backend, config, policy, scenario, reqs, times))
        if args.compare_generate_batch and scenario == "burst":
            progress("burst: one model.generate over every prompt ...")
            results.append(await run_generate_batch(backend, reqs))
    rows = [r.row() for r in results]
    ratio_rows = ratios(rows)
    return {
        "model": backend.model_name, "device": backend.device, "dtype": backend.dtype,
        "threads": torch.get_num_threads(),
        "settings": f"{args.requests} requests, {args.max_new_tokens} new tokens, temperature "
                    f"{args.temperature:g}, batch <= {args.max_batch_size}, stagger {args.interval:g} s",
        "results": rows, "ratios": ratio_rows, "targets": targets(rows, ratio_rows),
    }


def main(argv: list[str] | None = None) -> int:
    return run_model_benchmark("inference", parse_args(argv), main_async, render)


if __name__ == "__main__":
    sys.exit(main())
