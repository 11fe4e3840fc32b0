"""End-to-end benchmark: the real bot through the fake Discord against one ``model.generate`` per request.

Run from the repository root:  .venv/bin/python benchmarks/e2e.py [--json]
Smoke run (seconds):          .venv/bin/python benchmarks/e2e.py --requests 3 --max-tokens 6

The bot (``bot.runner.serve``: discord.py, job manager, engine, SQLite) runs in this process against
``tests.fakediscord`` on 127.0.0.1; each request is a ``/continue`` from a different member, greedy,
with the same prompts and ``--max-tokens`` as the baseline (``benchmarks/inference.py``'s seed-system
method: one ``model.generate`` per request, in arrival order, on the same loaded model). Scenarios: a
burst of ``--requests`` at once, and staggered arrivals (one every ``--interval`` s).

What is measured, per request (times from the INTERACTION_CREATE being sent):
  latency     until the final message version (the one with the ``-# #id · seed · tokens`` footer);
  defer       until the interaction callback (``FakeInteraction.response_time``);
  first text  until the first message version showing generated words beyond the bold prompt
              (status lines such as "Queued" do not count);
  overhead    latency minus the row's ``queue_s + generation_s``: Discord, discord.py, the job
              manager, SQLite writes and event delivery beyond the engine's own time; split into
              before the engine (until ``engine.submit``) and after it (from Done to the final version).
Streaming edits use the production interval (``JobOptions().edit_interval_s``). The fake answers REST
calls at once unless ``--rest-latency`` is given; real Discord adds its round trips on top.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from benchmarks._common import (  # noqa: E402
    LoopLagTicker, format_table, percentile, ratio_and_target_lines, run_model_benchmark,
)
from benchmarks.inference import (  # noqa: E402
    PROMPTS, RunResult, Sample, arrivals, generate_once, ratios, requests_for, run_baseline,
)
from bot.config import Settings, load_settings  # noqa: E402
from bot.discord_app import render  # noqa: E402
from bot.discord_app.app import ContinueBot  # noqa: E402
from bot.discord_app.jobs import JobOptions  # noqa: E402
from bot.runner import serve  # noqa: E402
from models.backend import Backend  # noqa: E402
from models.loader import load_backend  # noqa: E402
from models.types import GenerationParams, GenerationRequest  # noqa: E402
from tests.fakediscord import FakeDiscord, FakeInteraction, ids  # noqa: E402
from tests.fakediscord.records import MessageVersion  # noqa: E402

TARGET_BURST_SPEEDUP = 8.0
TARGET_STAGGERED_LATENCY = 0.25
TARGET_DEFER_P99_MS = 100.0
TARGET_FIRST_TEXT_P95_S = 1.0
TARGET_OVERHEAD_P50_MS = 5.0

FIRST_USER_ID = 1100000000000000500  # benchmark members: one per request, so per-user limits never apply
WARMUP_USER_ID = FIRST_USER_ID - 1
DONE_FOOTER = re.compile(r"\n-# #(\d+) · seed \d+ · (\d+) tokens · ")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="MODEL_NAME (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "model-cache", help="MODEL_CACHE_DIR")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between staggered arrivals")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens of every request (greedy)")
    parser.add_argument("--max-batch-size", type=int, default=16, help="MAX_BATCH_SIZE of the bot")
    parser.add_argument("--edit-interval", type=float, default=JobOptions().edit_interval_s,
                        help="seconds between streaming edits (default: the production value)")
    parser.add_argument("--rest-latency", type=float, default=0.0, help="seconds the fake Discord adds to REST calls")
    parser.add_argument("--scenarios", default="burst,staggered")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the app's default, every core but one)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for one scenario")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.requests < 1 or not 1 <= args.max_tokens <= 4096 or args.interval < 0:
        parser.error("--requests must be at least 1, --max-tokens from 1 to 4096, --interval not negative")
    return args


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
        "MAX_BATCH_SIZE": str(args.max_batch_size),
        "MAX_QUEUE_SIZE": str(max(64, args.requests)),
        "MAX_PENDING_PER_USER": str(args.requests),
        "MAX_NEW_TOKENS": str(max(256, args.max_tokens)),
        "REQUEST_TIMEOUT_S": str(max(300.0, args.timeout)),
        "SHUTDOWN_GRACE_S": "5",
    }
    if args.model:
        environ["MODEL_NAME"] = args.model
    return environ


def add_members(fake: FakeDiscord, count: int) -> list[int]:
    """One normal member per request (and one for the warm-up); returns the request members' ids."""
    fake.add_member(ids.GUILD_ID, WARMUP_USER_ID, "warmup")
    users = [FIRST_USER_ID + i for i in range(count)]
    for i, user_id in enumerate(users):
        fake.add_member(ids.GUILD_ID, user_id, f"user{i}")
    return users


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeDiscord, settings: Settings, options: JobOptions, backend: Backend
) -> AsyncIterator[ContinueBot]:
    """Serve the bot on ``backend`` (already loaded) until the block ends; yields once commands are synced."""
    stop = asyncio.Event()
    holder: list[ContinueBot] = []
    task = asyncio.create_task(serve(
        settings, settings.require_token(), stop=stop, job_options=options, on_bot=holder.append,
        backend_factory=lambda config, progress=None: backend,
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
    )
    model_s = (row.queue_s or 0.0) + (row.generation_s or 0.0) if row else None
    latency = final.at - inter.sent_at
    before = None if submitted is None else submitted - inter.sent_at
    return BotSample(sample, inter.response_time, None if model_s is None else latency - model_s, before)


async def run_bot(
    fake: FakeDiscord, bot: ContinueBot, clock: SubmitClock, scenario: str, users: list[int],
    times: list[float], params: GenerationParams, timeout: float,
) -> RunResult:
    """Send the scenario's /continue commands at their arrival times; wait for every final message."""
    loop = asyncio.get_running_loop()
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(len(users))]
    async with LoopLagTicker() as lag:
        start = loop.time()

        async def one(i: int) -> FakeInteraction:
            await asyncio.sleep(max(0.0, start + times[i] - loop.time()))
            options = {"prompt": prompts[i], "max_tokens": params.max_new_tokens,
                       "temperature": params.temperature, "seed": 1000 + i}
            inter = await fake.slash("continue", options, user=users[i])
            await inter.wait_for(finished, timeout, "the final message")
            return inter

        inters = await asyncio.gather(*(one(i) for i in range(len(users))))
    measured = [await measure(inter, prompt, start, bot, clock.at.get(str(inter.user_id)))
                for inter, prompt in zip(inters, prompts)]
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
    """The inference benchmark's row plus defer, first-text percentiles and overhead."""
    row = result.row()
    firsts = [s.first_text - s.arrival for s in result.samples if s.first_text is not None and s.finished is not None]
    extra = result.extra
    row.update({
        "p50_first_text_s": percentile(firsts, 50),
        "p95_first_text_s": percentile(firsts, 95),
        "defer_p99_ms": ms(percentile(extra.get("defers_s", []), 99)),
        "overhead_p50_ms": ms(percentile(extra.get("overheads_s", []), 50)),
        "overhead_p95_ms": ms(percentile(extra.get("overheads_s", []), 95)),
        "before_engine_p50_ms": ms(percentile(extra.get("before_engine_s", []), 50)),
        "after_engine_p50_ms": ms(percentile(extra.get("after_engine_s", []), 50)),
    })
    return row


def check(target: str, measured: float | None, met: bool) -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": measured is not None and met}


def targets(rows: list[dict[str, Any]], ratio_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it was met."""
    found = {r["scenario"]: r for r in ratio_rows if r["method"] == "bot"}
    checks = []
    if "burst" in found:
        value = found["burst"]["tok_per_s_x"]
        checks.append(check(f"burst tok/s >= {TARGET_BURST_SPEEDUP:g}x baseline", value,
                            value is not None and value >= TARGET_BURST_SPEEDUP))
    if "staggered" in found:
        value = found["staggered"]["mean_latency_x"]
        checks.append(check(f"staggered mean latency <= {TARGET_STAGGERED_LATENCY:g}x baseline", value,
                            value is not None and value <= TARGET_STAGGERED_LATENCY))
    bot_rows = [r for r in rows if r["method"] == "bot"]
    defers = [r["defer_p99_ms"] for r in bot_rows if r["defer_p99_ms"] is not None]
    if defers:
        checks.append(check(f"defer p99 < {TARGET_DEFER_P99_MS:g} ms (worst scenario)", max(defers),
                            max(defers) < TARGET_DEFER_P99_MS))
    for row in bot_rows:
        value = row["p95_first_text_s"]
        checks.append(check(f"{row['scenario']}: first text p95 <= {TARGET_FIRST_TEXT_P95_S:g} s", value,
                            value is not None and value <= TARGET_FIRST_TEXT_P95_S))
    for row in bot_rows:
        value = row["overhead_p50_ms"]
        checks.append(check(f"{row['scenario']}: overhead median < {TARGET_OVERHEAD_P50_MS:g} ms", value,
                            value is not None and value < TARGET_OVERHEAD_P50_MS))
    return checks


def render_report(report: dict[str, Any]) -> str:
    """The human-readable tables."""
    results = report["results"]
    parts = [
        f"model {report['model']} on {report['device']} ({report['dtype']}), torch threads {report['threads']}; "
        f"{report['settings']}",
        "",
        format_table(results, ["scenario", "method", "requests", "tokens", "wall_s", "tok_per_s",
                               "mean_latency_s", "p95_latency_s", "loop_lag_p99_ms", "loop_lag_max_ms"]),
        "",
        "through Discord (seconds/ms from the interaction being sent):",
        format_table([r for r in results if r["method"] == "bot"],
                     ["scenario", "defer_p99_ms", "p50_first_text_s", "p95_first_text_s",
                      "overhead_p50_ms", "overhead_p95_ms", "before_engine_p50_ms", "after_engine_p50_ms"]),
    ]
    return "\n".join(parts + ratio_and_target_lines(report))


# -- main -----------------------------------------------------------------------------------------


async def run_scenarios(
    backend: Backend, scenarios: list[str], params: GenerationParams, args: argparse.Namespace, progress
) -> list[RunResult]:
    """Start the bot once; per scenario run the baseline, then the same requests through Discord.

    Interleaving keeps both sides of a ratio close in time (on a shared box the load drifts). The
    baseline uses the model while the bot is idle, so the two never run at once.
    """
    results = []
    options = JobOptions(edit_interval_s=args.edit_interval)
    with tempfile.TemporaryDirectory(prefix="continuebot-e2e-") as tmp:
        async with FakeDiscord(rest_latency=args.rest_latency) as fake:
            users = add_members(fake, args.requests)
            settings = load_settings(bot_environ(fake, args, Path(tmp) / "bot.db"), env_file=None)
            progress("starting the bot against the fake Discord ...")
            async with running_bot(fake, settings, options, backend) as bot:
                clock = SubmitClock(bot.services.engine)
                await warm_up(fake)
                for scenario in scenarios:
                    times = arrivals(scenario, args.requests, args.interval)
                    if not args.skip_baseline:
                        progress(f"{scenario}: baseline (one generate per request) ...")
                        reqs = requests_for(args.requests, params)
                        results.append(await run_baseline(backend, scenario, reqs, times))
                    progress(f"{scenario}: the bot through the fake Discord ...")
                    results.append(await run_bot(fake, bot, clock, scenario, users, times, params, args.timeout))
    return results


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    progress = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    config = load_settings({"MODEL_NAME": args.model or "", "DEVICE": args.device,
                            "MODEL_CACHE_DIR": str(args.cache_dir), "TORCH_THREADS": str(args.threads)},
                            env_file=None).engine_config()
    backend = load_backend(config, progress)
    backend.warmup()
    generate_once(backend, GenerationRequest("Hello", GenerationParams(max_new_tokens=2, seed=0)))
    params = GenerationParams(max_new_tokens=args.max_tokens, temperature=0.0)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    results = await run_scenarios(backend, scenarios, params, args, progress)
    rows = [result_row(r) for r in results]
    ratio_rows = ratios(rows)
    return {
        "model": backend.model_name, "device": backend.device, "dtype": backend.dtype,
        "threads": torch.get_num_threads(),
        "settings": f"{args.requests} requests, {args.max_tokens} tokens, greedy, batch <= {args.max_batch_size}, "
                    f"stagger {args.interval:g} s, edit interval {args.edit_interval:g} s, "
                    f"REST latency {args.rest_latency:g} s",
        "results": rows, "ratios": ratio_rows, "targets": targets(rows, ratio_rows),
    }


def main(argv: list[str] | None = None) -> int:
    return run_model_benchmark("e2e", parse_args(argv), main_async, render_report)


if __name__ == "__main__":
    sys.exit(main())
