"""What SQLite can store: 64-bit integers, UTF-8 text, floats, bytes and NULL; names the first value that is not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from storage.errors import UnstorableValue

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# What the sqlite3 module raises while binding a value it cannot convert (before anything runs).
BIND_ERRORS = (OverflowError, UnicodeEncodeError)


def unstorable_reason(value: object) -> str | None:
    """Why SQLite cannot store ``value``, or None when it can."""
    if value is None or isinstance(value, (float, bytes)):
        return None
    if isinstance(value, int):  # bool included: stored as 0/1
        if INT64_MIN <= value <= INT64_MAX:
            return None
        # bit_length, not str(): str() of an int past 4300 digits raises ValueError
        return (f"an integer of {value.bit_length()} bits is outside SQLite's 64-bit INTEGER range "
                "(-2**63 to 2**63 - 1)")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (f"the text holds a lone surrogate (U+{ord(value[exc.start]):04X}) at character {exc.start}, "
                    "which is not a character and cannot be encoded as UTF-8")
        return None
    return f"{type(value).__name__} values cannot be stored"


def first_unstorable(params: Sequence[Any] | Mapping[str, Any]) -> UnstorableValue | None:
    """The error for the first parameter SQLite cannot store, or None when all of them fit."""
    values = params.values() if isinstance(params, Mapping) else params
    for position, value in enumerate(values, 1):
        reason = unstorable_reason(value)
        if reason is not None:
            return UnstorableValue(reason, position)
    return None


def check_storable(params: Sequence[Any] | Mapping[str, Any]) -> None:
    """Raise ``UnstorableValue`` for the first parameter SQLite cannot store."""
    error = first_unstorable(params)
    if error is not None:
        raise error
