"""End-to-end benchmark: the real bot through the fake Discord, against the engine alone and the seed's ``generate``.

Run from the repository root:  .venv/bin/python benchmarks/e2e.py [--json]
Smoke run (seconds):          .venv/bin/python benchmarks/e2e.py --requests 3 --max-tokens 4

Each (scenario, method) runs in its own fresh Python process that loads the model itself (see
``benchmarks/inference.py``): ``seed`` (one ``model.generate`` per request, main thread, torch's
default threads), ``engine`` (the engine alone, the app's defaults) and ``bot``: the bot
(``bot.runner.serve``: discord.py, job manager, engine, SQLite) in a process of its own against
``tests.fakediscord`` on 127.0.0.1, each request a greedy ``/continue`` from a different member
with the same prompts and ``--max-tokens``. Scenarios: a burst of ``--requests`` at once,
staggered arrivals (one every ``--interval`` s) and a single request.

What is measured for the bot, per request (times from the INTERACTION_CREATE being sent):
  latency     until the final message version (the one with the ``-# #id · seed · tokens`` footer);
  defer       until the interaction callback (``FakeInteraction.response_time``);
  first text  until the first message version showing generated words beyond the bold prompt
              (status lines such as "Queued" do not count);
  overhead    latency minus the row's ``queue_s + generation_s``: Discord, discord.py, the job
              manager, SQLite writes and event delivery beyond the engine's own time; split into
              before the engine (until ``engine.submit``) and after it (from Done to the final version).
Streaming edits use the production interval (``JobOptions().edit_interval_s``). The fake answers REST
calls at once unless ``--rest-latency`` is given; real Discord adds its round trips on top.

With ``--inference-url URL [--inference-model NAME]`` (an OpenAI-compatible server such as vLLM) the
methods are ``direct`` (the same prompts as concurrent streaming ``/v1/completions`` straight to the
server, ``benchmarks/inference.py``'s peer) and ``bot`` (the bot with ``INFERENCE_URL`` set: no model
in its process); the scenario defaults to the burst. ``vs_direct`` is, per prompt, the bot's latency
minus the direct latency of the same prompt (its median and the per-request overhead are reported).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks._common import LoopLagTicker, emit, format_table, percentile  # noqa: E402
from benchmarks.inference import (  # noqa: E402
    PROMPTS, RunResult, Sample, arrivals, child, compare, run_peer,
)
from bot.config import Settings, load_settings  # noqa: E402
from bot.discord_app import render  # noqa: E402
from bot.discord_app.app import ContinueBot  # noqa: E402
from bot.discord_app.jobs import JobOptions  # noqa: E402
from bot.runner import serve  # noqa: E402
from models.errors import ModelLoadError  # noqa: E402
from models.types import GenerationRequest  # noqa: E402
from tests.fakediscord import FakeDiscord, FakeInteraction, ids  # noqa: E402
from tests.fakediscord.records import MessageVersion  # noqa: E402

TARGET_BOT_X_ENGINE = 0.9
TARGET_DEFER_P99_MS = 100.0
TARGET_FIRST_TEXT_P95_S = 1.0
TARGET_OVERHEAD_P50_MS = 5.0

FIRST_USER_ID = 1100000000000000500  # benchmark members: one per request, so per-user limits never apply
WARMUP_USER_ID = FIRST_USER_ID - 1
DONE_FOOTER = re.compile(r"\n-# #(\d+) · seed \d+ · (\d+) tokens · ")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default=None, help="MODEL_NAME (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "model-cache", help="MODEL_CACHE_DIR")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between staggered arrivals")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens of every request (greedy)")
    parser.add_argument("--max-batch-size", type=int, default=None, help="MAX_BATCH_SIZE (default: the app's)")
    parser.add_argument("--threads", type=int, default=None, help="TORCH_THREADS (default: the app's)")
    parser.add_argument("--edit-interval", type=float, default=JobOptions().edit_interval_s,
                        help="seconds between streaming edits (default: the production value)")
    parser.add_argument("--rest-latency", type=float, default=0.0, help="seconds the fake Discord adds to REST calls")
    parser.add_argument("--inference-url", default=None,
                        help="an OpenAI-compatible server (INFERENCE_URL), e.g. http://127.0.0.1:8000/v1: "
                             "compares the bot served by it with the server driven directly")
    parser.add_argument("--inference-model", default=None,
                        help="INFERENCE_MODEL (default: the only model the server lists)")
    parser.add_argument("--scenarios", default=None, help="default: burst,staggered,single (burst with a server)")
    parser.add_argument("--methods", default=None, help="default: seed,engine,bot (direct,bot with a server)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for one scenario")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # bot:SCENARIO, in a child process
    args = parser.parse_args(argv)
    if args.requests < 1 or not 1 <= args.max_tokens <= 4096 or args.interval < 0:
        parser.error("--requests must be at least 1, --max-tokens from 1 to 4096, --interval not negative")
    remote = bool(args.inference_url)
    if args.inference_model and not remote:
        parser.error("--inference-model needs --inference-url")
    args.scenarios = args.scenarios or ("burst" if remote else "burst,staggered,single")
    args.methods = args.methods or ("direct,bot" if remote else "seed,engine,bot")
    if "direct" in args.methods and not remote:
        parser.error("the direct method needs --inference-url")
    return args


def inference_argv(args: argparse.Namespace) -> list[str]:
    """The same workload for ``benchmarks/inference.py``'s seed and engine workers."""
    argv = ["--cache-dir", str(args.cache_dir), "--device", args.device, "--requests", str(args.requests),
            "--interval", str(args.interval), "--max-new-tokens", str(args.max_tokens), "--temperature", "0"]
    for flag, value in (("--model", args.model), ("--max-batch-size", args.max_batch_size),
                        ("--threads", args.threads)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


# -- the bot, in this process, against the fake Discord -------------------------------------------


def bot_environ(fake: FakeDiscord, args: argparse.Namespace, db_path: Path) -> dict[str, str]:
    """The bot's settings: the fake Discord, the benchmark's model and batch size, a temp database."""
    environ = {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "DISCORD_GUILD_IDS": str(ids.GUILD_ID),
        "DEVICE": args.device,
        "MODEL_CACHE_DIR": str(args.cache_dir),
        "DATABASE_PATH": str(db_path),
        "MAX_QUEUE_SIZE": str(max(64, args.requests)),
        "MAX_PENDING_PER_USER": str(args.requests),
        "MAX_NEW_TOKENS": str(max(256, args.max_tokens)),
        "REQUEST_TIMEOUT_S": str(max(300.0, args.timeout)),
        "SHUTDOWN_GRACE_S": "5",
    }
    if args.model:
        environ["MODEL_NAME"] = args.model
    if args.inference_url:
        environ["INFERENCE_URL"] = args.inference_url
    if args.inference_model:
        environ["INFERENCE_MODEL"] = args.inference_model
    if args.max_batch_size is not None:
        environ["MAX_BATCH_SIZE"] = str(args.max_batch_size)
    if args.threads is not None:
        environ["TORCH_THREADS"] = str(args.threads)
    return environ


def add_members(fake: FakeDiscord, count: int) -> list[int]:
    """One normal member per request (and one for the warm-up); returns the request members' ids."""
    fake.add_member(ids.GUILD_ID, WARMUP_USER_ID, "warmup")
    users = [FIRST_USER_ID + i for i in range(count)]
    for i, user_id in enumerate(users):
        fake.add_member(ids.GUILD_ID, user_id, f"user{i}")
    return users


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord, settings: Settings, options: JobOptions) -> AsyncIterator[ContinueBot]:
    """Serve the bot (it loads the model on its inference thread) until the block ends; yields once synced."""
    stop = asyncio.Event()
    holder: list[ContinueBot] = []
    task = asyncio.create_task(serve(
        settings, settings.require_token(), stop=stop, job_options=options, on_bot=holder.append,
    ))
    try:
        await fake.wait_for(lambda: holder or task.done(), 300, "the bot to start")
        if task.done():
            raise RuntimeError(f"the bot exited early with code {task.result()}")
        await fake.wait_until_connected(60)
        await fake.wait_for(lambda: fake.commands.get(ids.GUILD_ID), 60, "/continue to be synced")
        yield holder[0]
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)


def finished(inter: FakeInteraction) -> bool:
    """True once the original response is final (no longer loading, no streaming cursor)."""
    original = inter.original
    return bool(original and not original.loading and original.content and not original.content.endswith(render.CURSOR))


def shows_generated_text(version: MessageVersion, prompt: str) -> bool:
    """True when the version shows generated words after the bold prompt (not just a status line)."""
    content = DONE_FOOTER.split(version.content)[0].removesuffix(render.CURSOR)
    head = render.bold_prompt(prompt)
    at = content.find(head)
    return at >= 0 and bool(content[at + len(head):].strip())


class SubmitClock:
    """Records when the bot hands each request to the engine (loop time, by user key).

    Installed over the running engine's ``submit`` (benchmark instrumentation, not a product seam)
    so the overhead splits into before the engine (Discord -> handler -> checks -> submit) and after
    it (Done -> SQLite -> final edit -> Discord). The engine's clock is ``time.monotonic``, like the loop's.
    """

    def __init__(self, engine: Any) -> None:
        self.at: dict[str, float] = {}
        self._submit = engine.submit
        engine.submit = self.submit

    def submit(self, request: GenerationRequest) -> Any:
        self.at[request.user_key] = asyncio.get_running_loop().time()
        return self._submit(request)


@dataclass
class BotSample:
    """One /continue as the fake Discord and the request log saw it (seconds)."""

    sample: Sample
    defer_s: float | None
    overhead_s: float | None
    before_engine_s: float | None


async def measure(
    inter: FakeInteraction, prompt: str, start: float, bot: ContinueBot, submitted: float | None
) -> BotSample:
    """Read the timings of one finished interaction and its logged row."""
    final = inter.history[-1]
    match = DONE_FOOTER.search(final.content)
    if match is None:
        raise RuntimeError(f"request did not finish with a result: {final.content[-300:]!r}")
    row = await bot.services.store.get(int(match.group(1)))
    firsts = [v.at for v in inter.history if shows_generated_text(v, prompt)]
    sample = Sample(
        arrival=inter.sent_at - start,
        first_text=(firsts[0] - start) if firsts else None,
        finished=final.at - start,
        tokens=sum(row.completion_tokens) if row else int(match.group(2)),
        text=row.outputs[0] if row and row.outputs else "",
    )
    model_s = (row.queue_s or 0.0) + (row.generation_s or 0.0) if row else None
    latency = final.at - inter.sent_at
    before = None if submitted is None else submitted - inter.sent_at
    return BotSample(sample, inter.response_time, None if model_s is None else latency - model_s, before)


async def run_bot(fake: FakeDiscord, bot: ContinueBot, clock: SubmitClock, scenario: str, users: list[int],
                  times: list[float], max_tokens: int, timeout: float) -> RunResult:
    """Send the scenario's /continue commands at their arrival times; wait for every final message."""
    loop = asyncio.get_running_loop()
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(len(users))]
    async with LoopLagTicker() as lag:
        start = loop.time()

        async def one(i: int) -> FakeInteraction:
            await asyncio.sleep(max(0.0, start + times[i] - loop.time()))
            options = {"prompt": prompts[i], "max_tokens": max_tokens, "temperature": 0.0, "seed": 1000 + i}
            return await fake.slash("continue", options, user=users[i])

        inters = await asyncio.gather(*(one(i) for i in range(len(users))))
        # One waiter for all (each version is timestamped when the fake records it): one waiter per
        # request woke 16 times per notification and cost the bot's loop more than some of its own work.
        await fake.wait_for(lambda: all(map(finished, inters)), timeout, "every final message")
    measured = [await measure(inter, prompt, start, bot, clock.at.get(str(inter.user_id)))
                for inter, prompt in zip(inters, prompts, strict=True)]
    extra = {
        "defers_s": [m.defer_s for m in measured if m.defer_s is not None],
        "overheads_s": [m.overhead_s for m in measured if m.overhead_s is not None],
        "before_engine_s": [m.before_engine_s for m in measured if m.before_engine_s is not None],
        "after_engine_s": [m.overhead_s - m.before_engine_s for m in measured
                           if m.overhead_s is not None and m.before_engine_s is not None],
    }
    return RunResult(scenario, "bot", [m.sample for m in measured], lag.p99_ms, lag.max_ms, extra)


async def warm_up(fake: FakeDiscord) -> None:
    """One short request first, so connection set-up and first-call costs stay out of the numbers."""
    inter = await fake.slash("continue", {"prompt": "Hello", "max_tokens": 2, "temperature": 0.0}, user=WARMUP_USER_ID)
    await inter.wait_for(finished, 300, "the warm-up result")


# -- report ---------------------------------------------------------------------------------------


def ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def result_row(result: RunResult) -> dict[str, Any]:
    """The inference benchmark's row plus defer, first-text percentiles, overhead and each request's latency."""
    extra = result.extra
    result.extra = {}
    row = result.row()
    row["latencies_s"] = [s.finished - s.arrival if s.finished is not None else None for s in result.samples]
    firsts = [s.first_text - s.arrival for s in result.samples if s.first_text is not None and s.finished is not None]
    row.update({
        "p50_first_text_s": percentile(firsts, 50),
        "defer_p99_ms": ms(percentile(extra.get("defers_s", []), 99)),
        "overhead_p50_ms": ms(percentile(extra.get("overheads_s", []), 50)),
        "overhead_p95_ms": ms(percentile(extra.get("overheads_s", []), 95)),
        "before_engine_p50_ms": ms(percentile(extra.get("before_engine_s", []), 50)),
        "after_engine_p50_ms": ms(percentile(extra.get("after_engine_s", []), 50)),
        "texts": [s.text for s in result.samples],
    })
    return row


def vs_direct(rows: list[dict[str, Any]]) -> None:
    """Per scenario: each bot request's latency minus the direct latency of the same prompt (median, p95)."""
    found = {(r["scenario"], r["method"]): r for r in rows}
    for row in rows:
        direct = found.get((row["scenario"], "direct"))
        if row["method"] != "bot" or direct is None:
            continue
        gaps = [b - d for b, d in zip(row["latencies_s"], direct["latencies_s"], strict=False)
                if b is not None and d is not None]
        row["vs_direct_p50_ms"] = ms(percentile(gaps, 50))
        row["vs_direct_p95_ms"] = ms(percentile(gaps, 95))
        row["x_direct"] = row["tok_per_s"] / direct["tok_per_s"] if row["tok_per_s"] and direct["tok_per_s"] else None
        row["same_text_as_direct"] = row["texts"] == direct["texts"]


def check(target: str, measured: float | None, met: bool) -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": measured is not None and met}


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it was met."""
    found = {(r["scenario"], r["method"]): r for r in rows}
    checks = []
    for scenario in ("burst", "staggered", "single"):
        for base, name in (("engine", "the engine alone"), ("direct", "the server driven directly")):
            bot, other = found.get((scenario, "bot")), found.get((scenario, base))
            if bot and other and other["tok_per_s"] and bot["tok_per_s"]:
                value = bot["tok_per_s"] / other["tok_per_s"]
                checks.append(check(f"{scenario}: bot tok/s >= {TARGET_BOT_X_ENGINE:g}x {name}", value,
                                    value >= TARGET_BOT_X_ENGINE))
    bot_rows = [r for r in rows if r["method"] == "bot"]
    defers = [r["defer_p99_ms"] for r in bot_rows if r["defer_p99_ms"] is not None]
    if defers:
        checks.append(check(f"defer p99 < {TARGET_DEFER_P99_MS:g} ms (worst scenario)", max(defers),
                            max(defers) < TARGET_DEFER_P99_MS))
    for row in bot_rows:
        value = row["p95_first_text_s"]
        checks.append(check(f"{row['scenario']}: first text p95 <= {TARGET_FIRST_TEXT_P95_S:g} s", value,
                            value is not None and value <= TARGET_FIRST_TEXT_P95_S))
        value = row["overhead_p50_ms"]
        checks.append(check(f"{row['scenario']}: overhead median < {TARGET_OVERHEAD_P50_MS:g} ms", value,
                            value is not None and value < TARGET_OVERHEAD_P50_MS))
    return checks


def render_report(report: dict[str, Any]) -> str:
    """The human-readable tables."""
    results = report["results"]
    bots = [r for r in results if r["method"] == "bot"]
    lines = [
        report["settings"], "",
        format_table(results, ["scenario", "method", "requests", "tokens", "wall_s", "tok_per_s",
                               "mean_latency_s", "p95_latency_s", "mean_first_text_s", "loop_lag_p99_ms"]),
        "", "through Discord (seconds/ms from the interaction being sent):",
        format_table(bots, ["scenario", "defer_p99_ms", "p50_first_text_s", "p95_first_text_s",
                            "overhead_p50_ms", "overhead_p95_ms", "before_engine_p50_ms", "after_engine_p50_ms"]),
    ]
    if any("x_direct" in r for r in bots):
        lines += ["", "the bot against the server driven directly (same prompts, each side in its own process):",
                  format_table(bots, ["scenario", "x_direct", "vs_direct_p50_ms", "vs_direct_p95_ms",
                                      "same_text_as_direct"])]
    if any(r["method"] == "seed" for r in results):
        lines += ["", "ratios (each method in its own fresh process):",
                  format_table(report["ratios"], ["scenario", "method", "seed_x", "latency_x", "first_text_x",
                                                  "same_text_as_seed"])]
    return "\n".join([*lines, "", format_table(report["targets"], ["target", "measured", "met"])])


# -- main -----------------------------------------------------------------------------------------


def served_model(url: str) -> str:
    """The first model the server lists (for the direct method without --inference-model)."""
    with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=30) as resp:
        return str(json.load(resp)["data"][0]["id"])


async def run_direct(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    """In a child process: the scenario's prompts as concurrent streaming completions straight to the server."""
    peer_args = argparse.Namespace(
        requests=args.requests, interval=args.interval, max_new_tokens=args.max_tokens, temperature=0.0,
        peer_url=args.inference_url, peer_model=args.inference_model or served_model(args.inference_url),
    )
    result = await run_peer(peer_args, scenario)
    result.method = "direct"
    return result_row(result)


async def run_worker(args: argparse.Namespace, scenario: str) -> dict[str, Any]:
    """In a child process: start the fake Discord and the bot, warm up, run one scenario."""
    count = 1 if scenario == "single" else args.requests
    options = JobOptions(edit_interval_s=args.edit_interval)
    with tempfile.TemporaryDirectory(prefix="continuebot-e2e-") as tmp:
        async with FakeDiscord(rest_latency=args.rest_latency) as fake:
            users = add_members(fake, count)
            settings = load_settings(bot_environ(fake, args, Path(tmp) / "bot.db"), env_file=None)
            async with running_bot(fake, settings, options) as bot:
                clock = SubmitClock(bot.services.engine)
                await warm_up(fake)
                times = arrivals(scenario, count, args.interval)
                result = await run_bot(fake, bot, clock, scenario, users, times, args.max_tokens, args.timeout)
    return result_row(result)


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if args.worker:
        try:
            method, scenario = args.worker.split(":")
            work = run_direct if method == "direct" else run_worker
            print(json.dumps(asyncio.run(work(args, scenario))))
        except ModelLoadError as exc:
            print(f"e2e: the model could not be loaded: {exc}", file=sys.stderr)
            return 1
        except RuntimeError as exc:  # e.g. the bot could not start: its reason, for the parent's report
            print(f"e2e: {exc}")
            return 1
        return 0
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rows = []
    try:
        for scenario in scenarios:
            for method in methods:
                print(f"{scenario}: {method} ...", file=sys.stderr)
                if method in ("bot", "direct"):
                    rows.append(child(Path(__file__), raw, method, scenario, quiet=args.json))
                else:
                    rows.append(child(REPO_ROOT / "benchmarks" / "inference.py", inference_argv(args), method,
                                      scenario, quiet=args.json))
    except RuntimeError as exc:
        print(f"e2e: {exc}", file=sys.stderr)
        return 1
    vs_direct(rows)
    where = f"server {args.inference_url}" if args.inference_url else f"device {args.device}"
    report = {
        "settings": f"{args.requests} requests x {args.max_tokens} tokens, greedy, stagger {args.interval:g} s, "
                    f"edit interval {args.edit_interval:g} s, REST latency {args.rest_latency:g} s, {where}",
        "results": [{k: v for k, v in r.items() if k not in ("texts", "latencies_s")} for r in rows],
        "ratios": compare(rows), "targets": targets(rows),
    }
    emit(report, args.json, render_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
