"""Parsing human durations such as 30m, 12h, 7d or 2w for bans."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*(m|min|h|d|w)", re.IGNORECASE)
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """'1d12h' -> 36 hours. Raises ValueError with a readable message on anything else."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"'{text}' is not a duration; use forms like 30m, 12h, 7d or 2w")
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: int(number)})
    if total <= timedelta(0) or total > timedelta(days=3650):
        raise ValueError("a ban lasts from 1 minute to 10 years (leave it empty for a permanent ban)")
    return total
