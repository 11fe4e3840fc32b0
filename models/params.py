"""Checks generation parameters and prompts against the owner's caps; draws seeds."""

from __future__ import annotations

import math
import re
import secrets

from models.errors import InvalidRequest
from models.types import GenerationParams, GenerationRequest, ParamLimits

__all__ = ["MAX_SEED", "draw_seed", "validate_params", "validate_prompt", "validate_request"]

MAX_SEED = 2**63 - 1  # fits SQLite INTEGER and JSON consumers that use int64
DRAWN_SEED_BOUND = 2**32  # drawn seeds stay short enough to type back in
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str every surrogate is a lone one


def draw_seed() -> int:
    """A fresh random seed, reported with the output so the request can be replayed."""
    return secrets.randbelow(DRAWN_SEED_BOUND)


def _show(value: object) -> str:
    """A value for a message; never raises and never floods it (an int of 400 digits, a long string)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"  # str() refuses > 4300 digits
    if isinstance(value, float):
        return f"{value:g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_int(field: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(field, f"must be a whole number, not {_show(value)}")
    if not low <= value <= high:
        raise InvalidRequest(field, f"must be between {low} and {high}, not {_show(value)}")


def _check_float(field: str, value: object, low: float, high: float, *, low_open: bool = False) -> None:
    # Any finite float in range can be sampled: temperatures too small for float32 logits (denormals,
    # 1e-300) are sampled greedily, the limit of the distribution as the temperature goes to 0.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidRequest(field, f"must be a number, not {_show(value)}")
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bracket = "(" if low_open else "["
        raise InvalidRequest(field, f"must be in {bracket}{low:g}, {high:g}], not {_show(value)}")


def validate_params(params: GenerationParams, limits: ParamLimits) -> None:
    """Raise ``InvalidRequest`` naming the first parameter that breaks a rule."""
    _check_int("max_new_tokens", params.max_new_tokens, 1, limits.max_new_tokens)
    _check_float("temperature", params.temperature, 0.0, 2.0)
    _check_float("top_p", params.top_p, 0.0, 1.0, low_open=True)
    _check_int("top_k", params.top_k, 0, 1000)
    _check_float("repetition_penalty", params.repetition_penalty, 1.0, 2.0)
    _check_int("variants", params.variants, 1, limits.max_variants)
    if params.seed is not None:
        _check_int("seed", params.seed, 0, MAX_SEED)


def validate_prompt(prompt: object, limits: ParamLimits) -> None:
    """Raise ``InvalidRequest`` if the prompt is not text, blank, or longer than the cap."""
    if not isinstance(prompt, str):
        raise InvalidRequest("prompt", "must be text")
    if not prompt.strip():
        raise InvalidRequest("prompt", "is empty; give some text to continue")
    surrogate = _LONE_SURROGATE.search(prompt)
    if surrogate is not None:
        # Not a character: no tokenizer or UTF-8 encoder takes it. Refused rather than altered, so the
        # caller decides (the Discord front end replaces it with U+FFFD before it gets here).
        raise InvalidRequest(
            "prompt", f"has a lone surrogate (U+{ord(surrogate.group()):04X}) at character {surrogate.start()}, "
            "which is not text"
        )
    if len(prompt) > limits.max_prompt_chars:
        raise InvalidRequest(
            "prompt", f"is {len(prompt)} characters; the limit is {limits.max_prompt_chars}"
        )


def validate_request(request: GenerationRequest, limits: ParamLimits) -> None:
    """Validate a whole request: its prompt, then its parameters."""
    validate_prompt(request.prompt, limits)
    validate_params(request.params, limits)
