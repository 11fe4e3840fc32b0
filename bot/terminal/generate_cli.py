"""``continuebot generate``: continue a text in the terminal, through the same engine and request log as the bot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from bot.config import Settings
from bot.errors import RequestRefused
from bot.lifecycle import RequestLifecycle
from bot.ops.logging_setup import setup_logging
from models.errors import EngineError, InvalidRequest, ModelLoadError
from models.handle import RequestHandle
from models.params import validate_request
from models.types import (
    Cancelled,
    Delta,
    Done,
    Event,
    Failed,
    GenerationParams,
    GenerationRequest,
    GenerationResult,
    Queued,
    Started,
)
from storage import DatabaseUnavailable, SchemaTooNew, StorageError, Store
from storage.types import NewRequest

if TYPE_CHECKING:  # torch loads with the engine: only once the arguments are known to be good
    from models.engine import BackendFactory, Engine

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
USER_KEY = "cli"
DEFAULTS = GenerationParams()  # the engine's defaults, shown in --help
CTRL_C = "interrupted in the terminal (Ctrl-C)"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``generate`` subcommand."""
    parser = subparsers.add_parser(
        "generate",
        help="continue a text in the terminal, through the same engine and log",
        description=(
            "Continue PROMPT with the configured model and stream the text to stdout. The request is "
            "logged like the bot's (source cli). Exit codes: 0 done; 1 generation failed; "
            "2 bad parameter or setting (model, database); 130 interrupted."
        ),
    )
    parser.add_argument("prompt", help="the text to continue ('-' reads it from stdin)")
    parser.add_argument("--max-new-tokens", type=int, metavar="N", help="default: DEFAULT_MAX_NEW_TOKENS")
    parser.add_argument("--temperature", type=float, metavar="T", help=f"0 = greedy (default {DEFAULTS.temperature:g})")
    parser.add_argument("--top-p", type=float, metavar="P", help=f"nucleus sampling mass (default {DEFAULTS.top_p:g})")
    parser.add_argument("--top-k", type=int, metavar="K", help=f"keep the K likeliest tokens, 0 = all (default {DEFAULTS.top_k})")
    parser.add_argument("--repetition-penalty", type=float, metavar="R", help=f"1.0 = none (default {DEFAULTS.repetition_penalty:g})")
    parser.add_argument("--seed", type=int, metavar="N", help="replay a result; drawn and shown when omitted")
    parser.add_argument("--variants", type=int, metavar="N", help=f"how many continuations (default {DEFAULTS.variants})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    parser.set_defaults(run=run)


def params_from(args: argparse.Namespace, settings: Settings) -> GenerationParams:
    """The request's parameters: the flags given, settings' and the engine's defaults for the rest."""
    defaults = GenerationParams(max_new_tokens=settings.default_max_new_tokens)
    given = {
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "repetition_penalty": args.repetition_penalty,
        "seed": args.seed,
        "variants": args.variants,
    }
    return dataclasses.replace(defaults, **{k: v for k, v in given.items() if v is not None})


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Generate once; returns the exit code."""
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level, settings.log_file)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    params = params_from(args, settings)
    config = settings.engine_config()
    try:
        validate_request(GenerationRequest(prompt, params), config.limits)
    except InvalidRequest as exc:
        return _error(f"{exc}", EXIT_BAD_INPUT)
    out = Terminal(quiet=args.quiet, as_json=args.json)
    if args.quiet and not settings.inference_url:  # with a server, transformers is never loaded
        _silence_progress_bars()
    return asyncio.run(generate(prompt, params, settings, out))


def _silence_progress_bars() -> None:
    # transformers and the hub draw tqdm bars on stderr while loading; --quiet means none.
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()


def _error(message: str, code: int) -> int:
    print(f"continuebot: {message}", file=sys.stderr)
    return code


@dataclass
class Terminal:
    """Where the command writes: text on stdout, progress and the summary on stderr."""

    quiet: bool = False
    as_json: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    def progress(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.stderr, flush=True)

    def stream(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


async def generate(
    prompt: str, params: GenerationParams, settings: Settings, out: Terminal,
    backend_factory: BackendFactory | None = None,
) -> int:
    """Open the log, load the engine, run one request; every expected failure is one line on stderr."""
    from models.engine import Engine

    try:
        async with Store(settings.database_path, retention_days=settings.log_retention_days) as store:
            began = time.monotonic()
            # Engine's default factory: the in-process model, or the server at INFERENCE_URL (no torch then)
            engine_ = (Engine(settings.engine_config(), progress=out.progress) if backend_factory is None
                       else Engine(settings.engine_config(), backend_factory=backend_factory, progress=out.progress))
            async with engine_ as engine:
                load_s = time.monotonic() - began
                return await _run_request(engine, store, prompt, params, out, load_s)
    except (DatabaseUnavailable, SchemaTooNew) as exc:
        return _error(f"{exc}", EXIT_BAD_INPUT)
    except ModelLoadError as exc:
        return _error(f"cannot load the model: {exc}", EXIT_BAD_INPUT)
    except InvalidRequest as exc:
        return _error(f"{exc}", EXIT_BAD_INPUT)
    except (StorageError, EngineError) as exc:
        return _error(f"{exc}", EXIT_FAILED)


async def _run_request(
    engine: Engine, store: Store, prompt: str, params: GenerationParams, out: Terminal, load_s: float
) -> int:
    lifecycle = RequestLifecycle(store, engine)
    model = engine.status().model_name
    new = NewRequest(
        source="cli", prompt=prompt, params=dataclasses.asdict(params), model_name=model,
        user_name=os.environ.get("USER"),
    )
    try:
        tracked = await lifecycle.submit(new, GenerationRequest(prompt, params, user_key=USER_KEY))
    except RequestRefused as exc:
        return _error(f"{exc.reason}", EXIT_FAILED)
    row_id, handle = tracked.request_id, tracked.handle
    stream = not out.as_json and params.variants == 1
    began = time.monotonic()
    with _interrupt_cancels(handle.cancel):
        final, status = await _follow(lifecycle, handle, row_id, out, stream)
    total_s = time.monotonic() - began
    if isinstance(final, Done):
        _report_done(out, prompt, tracked.logged.params, model, row_id, final.result, load_s, total_s, stream)
        return EXIT_OK
    if stream:
        out.stream("\n")
    if isinstance(final, Cancelled):
        out.progress(f"cancelled; logged as request #{row_id}")
        return EXIT_INTERRUPTED
    reason = final.reason if isinstance(final, Failed) else "the engine ended without a result"
    return _error(f"generation failed: {reason} (request #{row_id}, logged {status})", EXIT_FAILED)


async def _follow(
    lifecycle: RequestLifecycle, handle: RequestHandle, row_id: int, out: Terminal, stream: bool
) -> tuple[Event | None, str]:
    """Log and show the events; returns the final one and the status it was logged as."""
    async for event in handle:
        status = await lifecycle.on_event(row_id, event, cancel_reason=CTRL_C)
        if status is not None:
            return event, status
        if isinstance(event, Queued) and event.position > 1:
            out.progress(f"queued at position {event.position}")
        elif isinstance(event, Started) and event.prompt_truncated:
            out.progress("the prompt was longer than the model's context; its beginning was cut")
        elif isinstance(event, Delta) and stream:
            out.stream(event.text)
    return None, await lifecycle.end(row_id, "failed", "the engine ended without a result")


@contextlib.contextmanager
def _interrupt_cancels(cancel: Callable[[], None]) -> Iterator[None]:
    """Within the block, Ctrl-C cancels the request (then logged as cancelled) instead of killing us."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, cancel)
    except (NotImplementedError, RuntimeError, ValueError):
        yield  # not the main thread, or a platform without signal handlers
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


def _report_done(
    out: Terminal, prompt: str, params: dict[str, Any], model: str, row_id: int,
    result: GenerationResult, load_s: float, total_s: float, streamed: bool,
) -> None:
    tokens = sum(result.completion_tokens)
    rate = tokens / result.generation_s if result.generation_s > 0 else 0.0
    if out.as_json:
        print(json.dumps({
            "prompt": prompt,
            "params": params,
            "seed": result.seed,
            "texts": list(result.texts),
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": list(result.completion_tokens),
            "prompt_truncated": result.prompt_truncated,
            "model": model,
            "request_id": row_id,
            "timings": {
                "load_s": round(load_s, 3),
                "queue_s": round(result.queue_s, 3),
                "generation_s": round(result.generation_s, 3),
                "total_s": round(total_s, 3),
                "tokens_per_s": round(rate, 2),
            },
        }, ensure_ascii=False), file=out.stdout, flush=True)
        return
    if streamed:
        out.stream("\n")
    else:
        for i, text in enumerate(result.texts, start=1):
            out.stream(f"--- variant {i} of {len(result.texts)} ---\n{text}\n")
    out.progress(
        f"seed {result.seed} · {tokens} tokens in {result.generation_s:.1f} s ({rate:.1f} tok/s) · "
        f"logged as request #{row_id}"
    )
