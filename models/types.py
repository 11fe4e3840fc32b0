"""Plain data the engine takes and gives: config, params, requests, events, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Union


PromptOverflow = Literal["truncate", "reject"]  # truncate keeps the prompt's end


@dataclass(frozen=True)
class ParamLimits:
    """Caps the owner sets on what a request may ask for."""

    max_new_tokens: int = 256
    max_variants: int = 5
    max_prompt_chars: int = 4000


# Rows decoded together when MAX_BATCH_SIZE is 0 (auto), by device type. Measured on CPU (see
# docs/engine.md): with packed weights a 16-row step costs about 1.2x a 1-row step (77 vs 63 ms),
# so 16 rows serve a burst of 16 in one pass. A GPU step costs about the same for 1 or 32 rows; more only needs more memory.
AUTO_BATCH_SIZE = {"cpu": 16, "cuda": 32, "mps": 16}


def auto_batch_size(device: str) -> int:
    """The default batch size for a device such as ``cpu`` or ``cuda:1``."""
    return AUTO_BATCH_SIZE.get(device.split(":")[0], 16)


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs, built once from the app's settings."""

    model_name: str | None = None  # hub id or local dir; None = bundled SmolLM2-135M-Instruct
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    cache_dir: Path = Path("model-cache")
    max_batch_size: int = 0  # 0: AUTO_BATCH_SIZE for the device the model is on
    max_queue_size: int = 64
    max_pending_per_user: int = 3
    request_timeout_s: float = 300.0
    prompt_overflow: PromptOverflow = "truncate"
    limits: ParamLimits = field(default_factory=ParamLimits)
    warmup: bool = True
    torch_threads: int = 0  # 0: every core this process may use
    pack_weights: bool = True  # on CPU, prepack linear weights for oneDNN (models/packing.py)
    batch_wait_s: float = 0.005  # an idle engine waits while requests keep coming this close together
    # A remote OpenAI-compatible server (vLLM) instead of the in-process model; None = in-process.
    inference_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    inference_model: str | None = None  # served model name; None = the only one the server lists
    inference_api_key: str | None = field(default=None, repr=False)  # sent as a Bearer token, never logged
    inference_concurrency: int = 32  # requests in flight at the server (the batch size when MAX_BATCH_SIZE is 0)
    inference_timeout_s: float = 30.0  # connecting, and the longest silence within a stream


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for one request; temperature 0 means greedy."""

    max_new_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.0
    seed: int | None = None  # None: the engine draws one and reports it
    variants: int = 1


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to continue; ``user_key`` groups requests for fairness and limits."""

    prompt: str
    params: GenerationParams = field(default_factory=GenerationParams)
    user_key: str = "anonymous"
    request_id: int | str | None = None  # the caller's id, used only in logs


@dataclass(frozen=True)
class GenerationResult:
    """What a finished request produced."""

    texts: tuple[str, ...]
    seed: int
    prompt_tokens: int
    completion_tokens: tuple[int, ...]
    queue_s: float
    generation_s: float
    prompt_truncated: bool = False


@dataclass(frozen=True)
class Queued:
    """Waiting; ``position`` 1 is next. Sent again whenever the position or ETA changes."""

    position: int
    eta_s: float | None


@dataclass(frozen=True)
class Started:
    """The request joined a running batch."""

    seed: int
    prompt_tokens: int
    prompt_truncated: bool = False


@dataclass(frozen=True)
class Delta:
    """New text for one variant (0-based); never splits a multi-byte character."""

    variant: int
    text: str


@dataclass(frozen=True)
class Done:
    """Finished; the last event."""

    result: GenerationResult


FailureCode = Literal["error", "timeout", "oom", "shutdown", "worker_died", "invalid"]


@dataclass(frozen=True)
class Failed:
    """Failed; the last event. ``reason`` is fit to show a user."""

    reason: str
    code: FailureCode = "error"


@dataclass(frozen=True)
class Cancelled:
    """Cancelled by the caller; the last event."""

    reason: str = "cancelled"


Event = Union[Queued, Started, Delta, Done, Failed, Cancelled]
FINAL_EVENTS = (Done, Failed, Cancelled)


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot for /status, metrics and the CLI."""

    model_name: str
    device: str
    dtype: str
    queue_length: int
    running: int
    tokens_per_s: float | None  # measured over recent batches; None before the first
    started_at: float  # time.time() when the engine became ready
    completed: int = 0
    batch_size: int = 0  # rows decoded together at most
