"""Parsing the durations people type for bans: 30m, 30min, 30 minutes, 1h30m, 2 weeks."""

from __future__ import annotations

import re
from datetime import timedelta

# Each spelling of a unit, with its length in minutes. Longer spellings come first in the
# pattern so "30min" is read as minutes, not as "30m" followed by "in".
_MINUTES = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 1),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 60),
    **dict.fromkeys(("d", "day", "days"), 60 * 24),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 60 * 24 * 7),
}
_UNIT = "|".join(sorted(_MINUTES, key=len, reverse=True))
_PART = re.compile(rf"\s*(\d+)\s*({_UNIT})(?![a-z])\s*,?", re.IGNORECASE)
LONGEST = timedelta(days=3650)
FORMS = "a number and a unit: 30m, 30min, 30 minutes, 12h, 1h30m, 7d, 2 weeks"


def parse_duration(text: str) -> timedelta:
    """'1d12h' -> 36 hours. Raises ValueError with a readable message on anything else."""
    minutes, pos = 0, 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"'{text}' is not a duration; use {FORMS}")
        minutes += int(match.group(1)) * _MINUTES[match.group(2).lower()]
        pos = match.end()
    # Compared as whole minutes first: a huge number never reaches timedelta (no OverflowError).
    if pos == 0 or minutes <= 0 or minutes > LONGEST // timedelta(minutes=1):
        if pos == 0:
            raise ValueError(f"'{text}' is not a duration; use {FORMS}")
        raise ValueError("a ban lasts from 1 minute to 10 years (leave it empty for a permanent ban)")
    return timedelta(minutes=minutes)
