"""Inference benchmark: the engine against the seed's plain ``generate``, transformers' static batch and a peer server.

Run from the repository root:  .venv/bin/python benchmarks/inference.py [--json]
Smoke run (seconds):          .venv/bin/python benchmarks/inference.py --requests 3 --max-new-tokens 4
With vLLM (or any OpenAI-compatible server) as the peer:
    .venv/bin/python benchmarks/inference.py --peer-url http://127.0.0.1:8000/v1 --peer-model NAME

Every (scenario, method) runs in its own fresh Python process that loads the model itself, so no
method inherits another's torch threads, caches or warm-up (a thread that once ran a torch op
slows the next one measurably on CPU). Methods:

- ``seed``: the seed system as its users ran it: one ``model.generate`` per request in arrival
  order, on the main thread, with torch's default threads;
- ``static_batch`` (burst only): transformers' own batching, one left-padded ``generate`` over
  every prompt, main thread, default threads (no streaming, no per-request seeds);
- ``engine``: ``models.engine.Engine`` with the app's defaults (``--max-batch-size`` and
  ``--threads`` override them), requests submitted at their arrival times from the event loop;
- ``peer`` (with ``--peer-url``): the same prompts as concurrent streaming ``/v1/completions``.

Scenarios: ``burst`` (every request at once), ``staggered`` (one every ``--interval`` s) and
``single`` (one request). The table gives tok/s, mean/p95 latency, mean time to first text and
event-loop lag; the ratios compare each method with ``seed`` and with the best peer (the faster
of ``static_batch`` and ``peer``) in the same scenario; greedy outputs are checked token for token
against ``seed``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import LoopLagTicker, emit, format_table, mean, percentile  # noqa: E402
from models.errors import ModelLoadError  # noqa: E402
from models.types import Delta, Done, EngineConfig, Failed, GenerationParams, GenerationRequest, ParamLimits  # noqa: E402

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
METHODS = ("seed", "static_batch", "engine", "peer")
PEERS = ("static_batch", "peer")
TARGETS = {  # (scenario, what, bound)
    "burst tok/s >= 1.0x the best peer": ("burst", "peer_x", 1.0),
    "burst tok/s >= 7x seed": ("burst", "seed_x", 7.0),
    "staggered mean latency <= 0.25x seed": ("staggered", "latency_x", 0.25),
    "single request tok/s >= 1.0x seed": ("single", "seed_x", 1.0),
}
TARGET_LAG_P99_MS = 10.0


@dataclass
class Sample:
    """One request's timing, in seconds from the scenario's start, and its text."""

    arrival: float
    first_text: float | None = None
    finished: float | None = None
    tokens: int = 0
    text: str = ""


@dataclass
class RunResult:
    scenario: str
    method: str
    samples: list[Sample]
    lag_p99_ms: float | None = None
    lag_max_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        done = [s for s in self.samples if s.finished is not None]
        wall = max(s.finished for s in done) - min(s.arrival for s in self.samples) if done else None
        tokens = sum(s.tokens for s in done)
        latencies = [s.finished - s.arrival for s in done]
        firsts = [s.first_text - s.arrival for s in done if s.first_text is not None]
        return {
            "scenario": self.scenario, "method": self.method, "requests": len(done), "tokens": tokens,
            "wall_s": wall, "tok_per_s": tokens / wall if wall else None,
            "mean_latency_s": mean(latencies), "p95_latency_s": percentile(latencies, 95),
            "mean_first_text_s": mean(firsts), "p95_first_text_s": percentile(firsts, 95),
            "loop_lag_p99_ms": self.lag_p99_ms, "loop_lag_max_ms": self.lag_max_ms,
            **self.extra,
        }


# -- arguments ----------------------------------------------------------------------------------


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="MODEL_NAME (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "model-cache", help="MODEL_CACHE_DIR")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between staggered arrivals")
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy (outputs are compared)")
    parser.add_argument("--max-batch-size", type=int, default=None, help="MAX_BATCH_SIZE (default: the app's)")
    parser.add_argument("--threads", type=int, default=None, help="TORCH_THREADS (default: the app's)")
    parser.add_argument("--peer-url", default=None, help="an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--peer-model", default=None, help="the model name the peer serves")
    parser.add_argument("--json", action="store_true")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--scenarios", default="burst,staggered,single")
    parser.add_argument("--methods", default="seed,static_batch,engine,peer")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # METHOD:SCENARIO, in a child process
    args = parser.parse_args(argv)
    if args.requests < 1 or args.max_new_tokens < 1 or args.interval < 0:
        parser.error("--requests and --max-new-tokens must be at least 1, --interval not negative")
    if bool(args.peer_url) != bool(args.peer_model):
        parser.error("--peer-url and --peer-model go together")
    return args


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """The app's defaults, with the benchmark's model, queue room and any override given."""
    base = EngineConfig()
    return replace(
        base, model_name=args.model, device=args.device, cache_dir=args.cache_dir,
        max_batch_size=args.max_batch_size or base.max_batch_size,
        torch_threads=base.torch_threads if args.threads is None else args.threads,
        max_queue_size=max(base.max_queue_size, args.requests), max_pending_per_user=args.requests,
        request_timeout_s=3600.0, limits=ParamLimits(max_new_tokens=max(args.max_new_tokens, 256)),
    )


def params_of(args: argparse.Namespace) -> GenerationParams:
    return GenerationParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=0.95, top_k=50)


def requests_for(n: int, params: GenerationParams) -> list[GenerationRequest]:
    return [
        GenerationRequest(PROMPTS[i % len(PROMPTS)], replace(params, seed=1000 + i), user_key=f"user{i}")
        for i in range(n)
    ]


def arrivals(scenario: str, n: int, interval: float) -> list[float]:
    if scenario == "single":
        return [0.0]
    return [0.0] * n if scenario == "burst" else [i * interval for i in range(n)]


# -- the methods, each run by a child process ------------------------------------------------------


def load_plain(args: argparse.Namespace) -> tuple[Any, Any, frozenset[int]]:
    """The model as the seed's script loads it: on this (main) thread, torch's default threads."""
    import torch

    from models.loader import resolve_source
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_source(engine_config(args), lambda message: print(message, file=sys.stderr))
    tokenizer = AutoTokenizer.from_pretrained(source.location)
    model = AutoModelForCausalLM.from_pretrained(source.location, dtype=torch.float32).to(args.device).eval()
    eos = {model.generation_config.eos_token_id, tokenizer.eos_token_id}
    return model, tokenizer, frozenset(e for e in eos if isinstance(e, int))


def generate_kwargs(p: GenerationParams, pad: int) -> dict[str, Any]:
    sampling = (dict(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k)
                if p.temperature > 0 else {"do_sample": False})
    return dict(max_new_tokens=p.max_new_tokens, repetition_penalty=p.repetition_penalty, pad_token_id=pad,
                **sampling)


def until_eos(ids: list[int], eos: frozenset[int]) -> list[int]:
    stop = next((i for i, token in enumerate(ids) if token in eos), None)
    return ids if stop is None else ids[: stop + 1]


def run_seed(args: argparse.Namespace, scenario: str) -> RunResult:
    """One plain ``generate`` per request, in arrival order, on the main thread."""
    import torch

    model, tokenizer, eos = load_plain(args)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    reqs = requests_for(1 if scenario == "single" else args.requests, params_of(args))
    with torch.inference_mode():
        model.generate(**tokenizer("Hello", return_tensors="pt"), max_new_tokens=2, pad_token_id=pad)  # warm-up
    samples = [Sample(arrival=t) for t in arrivals(scenario, len(reqs), args.interval)]
    start = time.perf_counter()
    for request, sample in zip(reqs, samples, strict=True):
        time.sleep(max(0.0, start + sample.arrival - time.perf_counter()))
        inputs = tokenizer(request.prompt, return_tensors="pt").to(model.device)
        torch.manual_seed(request.params.seed or 0)
        with torch.inference_mode():
            out = model.generate(**inputs, **generate_kwargs(request.params, pad))
        new = until_eos(out[0, inputs["input_ids"].shape[1]:].tolist(), eos)
        sample.finished = sample.first_text = time.perf_counter() - start  # no streaming: text at the end
        sample.tokens, sample.text = len(new), tokenizer.decode(new, skip_special_tokens=True)
    return RunResult(scenario, "seed", samples, extra={"threads": torch.get_num_threads()})


def run_static_batch(args: argparse.Namespace, scenario: str) -> RunResult:
    """transformers' own batching: one left-padded ``generate`` over every prompt (burst only)."""
    import torch

    model, tokenizer, eos = load_plain(args)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = pad
    reqs = requests_for(args.requests, params_of(args))
    with torch.inference_mode():
        model.generate(**tokenizer("Hello", return_tensors="pt"), max_new_tokens=2, pad_token_id=pad)  # warm-up
    start = time.perf_counter()
    batch = tokenizer([r.prompt for r in reqs], return_tensors="pt", padding=True).to(model.device)
    torch.manual_seed(reqs[0].params.seed or 0)
    with torch.inference_mode():
        out = model.generate(**batch, **generate_kwargs(reqs[0].params, pad))
    end = time.perf_counter() - start
    samples = []
    for row in out[:, batch["input_ids"].shape[1]:].tolist():
        new = until_eos(row, eos)
        samples.append(Sample(0.0, end, end, len(new), tokenizer.decode(new, skip_special_tokens=True)))
    return RunResult(scenario, "static_batch", samples, extra={"threads": torch.get_num_threads()})


async def run_engine(args: argparse.Namespace, scenario: str) -> RunResult:
    """The engine as the app runs it: loaded, warmed up and driven on its own inference thread."""
    from models.engine import Engine

    config = engine_config(args)
    reqs = requests_for(1 if scenario == "single" else args.requests, params_of(args))
    samples = [Sample(arrival=t) for t in arrivals(scenario, len(reqs), args.interval)]
    loop = asyncio.get_running_loop()
    async with Engine(config, progress=lambda message: print(message, file=sys.stderr)) as engine:
        async with LoopLagTicker() as lag:
            start = loop.time()

            async def one(request: GenerationRequest, sample: Sample) -> None:
                await asyncio.sleep(max(0.0, start + sample.arrival - loop.time()))
                async for event in engine.submit(request):
                    if isinstance(event, Delta) and sample.first_text is None and event.text.strip():
                        sample.first_text = loop.time() - start
                    elif isinstance(event, Done):
                        sample.finished = loop.time() - start
                        sample.tokens, sample.text = event.result.completion_tokens[0], event.result.texts[0]
                    elif isinstance(event, Failed):
                        raise RuntimeError(f"the engine failed a request: {event.reason}")

            await asyncio.gather(*(one(r, s) for r, s in zip(reqs, samples, strict=True)))
        extra = {"batch": engine.status().batch_size, "threads": config.torch_threads}
    return RunResult(scenario, "engine", samples, lag.p99_ms, lag.max_ms, extra)


async def run_peer(args: argparse.Namespace, scenario: str) -> RunResult:
    """The same prompts as concurrent streaming completions to an OpenAI-compatible server."""
    import aiohttp

    params = params_of(args)
    reqs = requests_for(1 if scenario == "single" else args.requests, params)
    samples = [Sample(arrival=t) for t in arrivals(scenario, len(reqs), args.interval)]
    loop = asyncio.get_running_loop()
    url = args.peer_url.rstrip("/") + "/completions"
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _peer_completion(session, url, args.peer_model, "Hello", replace(params, max_new_tokens=2, seed=0),
                               None, loop.time())  # warm-up
        async with LoopLagTicker() as lag:
            start = loop.time()

            async def one(request: GenerationRequest, sample: Sample) -> None:
                await asyncio.sleep(max(0.0, start + sample.arrival - loop.time()))
                await _peer_completion(session, url, args.peer_model, request.prompt, request.params, sample, start)

            await asyncio.gather(*(one(r, s) for r, s in zip(reqs, samples, strict=True)))
    return RunResult(scenario, "peer", samples, lag.p99_ms, lag.max_ms, {"peer": args.peer_url})


async def _peer_completion(session: Any, url: str, model: str, prompt: str, p: GenerationParams,
                           sample: Sample | None, start: float) -> None:
    loop = asyncio.get_running_loop()
    body = {"model": model, "prompt": prompt, "max_tokens": p.max_new_tokens, "temperature": p.temperature,
            "top_p": p.top_p, "top_k": p.top_k, "seed": p.seed, "stream": True,
            "stream_options": {"include_usage": True}}
    async with session.post(url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"the peer answered {response.status}: {(await response.text())[:300]}")
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]" or sample is None:
                continue
            chunk = json.loads(line[5:])
            for choice in chunk.get("choices") or ():
                text = choice.get("text") or ""
                sample.text += text
                if text.strip() and sample.first_text is None:
                    sample.first_text = loop.time() - start
            if chunk.get("usage"):
                sample.tokens = int(chunk["usage"]["completion_tokens"])
    if sample is not None:
        sample.finished = loop.time() - start


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """In a child process: run one method on one scenario, return its row (with the texts)."""
    method, scenario = args.worker.split(":")
    if method == "seed":
        result = run_seed(args, scenario)
    elif method == "static_batch":
        result = run_static_batch(args, scenario)
    elif method == "engine":
        result = asyncio.run(run_engine(args, scenario))
    else:
        result = asyncio.run(run_peer(args, scenario))
    return {**result.row(), "texts": [s.text for s in result.samples]}


# -- the parent: one fresh process per (scenario, method), then the report -------------------------------


def plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"inference: unknown method(s) {sorted(unknown)}; choose from {', '.join(METHODS)}")
    if not args.peer_url and "peer" in methods:
        methods.remove("peer")
    runs = []
    for scenario in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        for method in methods:
            if method == "static_batch" and scenario != "burst":
                continue
            runs.append((scenario, method))
    return runs


def child(script: Path, argv: list[str], method: str, scenario: str, quiet: bool) -> dict[str, Any]:
    """Run ``script --worker method:scenario`` in a fresh interpreter and read its one JSON line."""
    command = [sys.executable, str(script), *argv, "--worker", f"{method}:{scenario}"]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL if quiet else None,
                          text=True, cwd=REPO_ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{method} on {scenario} failed (exit {done.returncode}): {done.stdout[-500:]}")
    return json.loads(lines[-1])


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per row: ratios to seed and to the best peer of its scenario, and whether greedy texts match seed."""
    out = []
    for row in rows:
        same = [r for r in rows if r["scenario"] == row["scenario"]]
        seed = next((r for r in same if r["method"] == "seed"), None)
        peers = [r for r in same if r["method"] in PEERS and r["tok_per_s"]]
        best = max(peers, key=lambda r: r["tok_per_s"], default=None)
        out.append({
            "scenario": row["scenario"], "method": row["method"],
            "seed_x": _ratio(row["tok_per_s"], seed and seed["tok_per_s"]),
            "latency_x": _ratio(row["mean_latency_s"], seed and seed["mean_latency_s"]),
            "first_text_x": _ratio(row["mean_first_text_s"], seed and seed["mean_first_text_s"]),
            "peer_x": _ratio(row["tok_per_s"], best and best["tok_per_s"]),
            "best_peer": best["method"] if best else None,
            "same_text_as_seed": None if seed is None or "texts" not in row else row["texts"] == seed["texts"],
        })
    return out


def _ratio(value: float | None, base: float | None) -> float | None:
    return value / base if value is not None and base else None


def targets(ratios: list[dict[str, Any]], rows: list[dict[str, Any]], method: str) -> list[dict[str, Any]]:
    found = {(r["scenario"], r["method"]): r for r in ratios}
    checks = []
    for name, (scenario, what, bound) in TARGETS.items():
        value = found.get((scenario, method), {}).get(what)
        met = value is not None and (value <= bound if what == "latency_x" else value >= bound)
        checks.append({"target": f"{method}: {name}", "measured": value, "met": met})
    lags = [r["loop_lag_p99_ms"] for r in rows if r["method"] == method and r["loop_lag_p99_ms"] is not None]
    if lags:
        checks.append({"target": f"{method}: loop lag p99 < {TARGET_LAG_P99_MS:g} ms", "measured": max(lags),
                       "met": max(lags) < TARGET_LAG_P99_MS})
    return checks


def render(report: dict[str, Any]) -> str:
    cols = ["scenario", "method", "requests", "tokens", "wall_s", "tok_per_s", "mean_latency_s",
            "p95_latency_s", "mean_first_text_s", "loop_lag_p99_ms"]
    ratio_cols = ["scenario", "method", "seed_x", "peer_x", "best_peer", "latency_x", "first_text_x",
                  "same_text_as_seed"]
    return "\n".join([
        report["settings"], "", format_table(report["results"], cols), "",
        "ratios (each method in its own fresh process; seed_x = tok/s over seed's, peer_x = over the best peer's):",
        format_table(report["ratios"], ratio_cols), "", format_table(report["targets"], ["target", "measured", "met"]),
    ])


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if args.worker:
        try:
            print(json.dumps(run_worker(args)))
        except ModelLoadError as exc:
            print(f"inference: the model could not be loaded: {exc}", file=sys.stderr)
            return 1
        return 0
    rows = []
    try:
        for scenario, method in plan(args):
            print(f"{scenario}: {method} ...", file=sys.stderr)
            rows.append(child(Path(__file__), raw, method, scenario, quiet=args.json))
    except RuntimeError as exc:
        print(f"inference: {exc}", file=sys.stderr)
        return 1
    ratios = compare(rows)
    report = {
        "settings": f"{args.requests} requests x {args.max_new_tokens} new tokens, temperature "
                    f"{args.temperature:g}, stagger {args.interval:g} s, device {args.device}",
        "results": [{k: v for k, v in r.items() if k != "texts"} for r in rows],
        "ratios": ratios, "targets": targets(ratios, rows, "engine"),
    }
    emit(report, args.json, render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
