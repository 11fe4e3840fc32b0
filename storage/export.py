"""CSV and JSONL encodings of request rows, and the way back (for imports and round-trip checks)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from storage.types import RequestRow

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRow))
_JSON_COLUMNS = ("params", "outputs", "completion_tokens")
_TIME_COLUMNS = ("created_at", "started_at", "finished_at")
_INT_COLUMNS = (
    "id", "user_id", "guild_id", "channel_id", "interaction_id", "parent_id", "seed", "prompt_tokens"
)
_FLOAT_COLUMNS = ("queue_s", "generation_s")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection). Such text
# cells get a leading apostrophe, which spreadsheets show as plain text; a text cell that already
# starts with an apostrophe gets one more, so ``from_record(..., from_csv=True)`` can undo it exactly.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def record(row: RequestRow) -> dict[str, Any]:
    """A row as plain JSON values: ISO 8601 UTC times, lists for tuples."""
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = getattr(row, name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def jsonl_lines(rows: Iterable[RequestRow]) -> bytes:
    """One JSON object per line for each row."""
    return "".join(json.dumps(record(r), ensure_ascii=False) + "\n" for r in rows).encode()


def csv_header() -> bytes:
    """The CSV header line."""
    return _csv_text([COLUMNS])


def csv_lines(rows: Iterable[RequestRow]) -> bytes:
    """CSV lines for the rows; JSON values (params, outputs, token counts) as JSON text.

    Text that a spreadsheet would run as a formula is guarded with a leading apostrophe.
    """
    table = []
    for row in rows:
        rec = record(row)
        table.append([
            json.dumps(rec[c], ensure_ascii=False) if c in _JSON_COLUMNS
            else "" if rec[c] is None else _guard(rec[c])
            for c in COLUMNS
        ])
    return _csv_text(table)


def _guard(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _csv_text(table: Iterable[Iterable[Any]]) -> bytes:
    buffer = io.StringIO()
    # RFC 4180 line ends: the writer then quotes any cell holding a CR or an LF, so a bare CR in a
    # prompt cannot split a row.
    csv.writer(buffer, lineterminator="\r\n").writerows(table)
    return buffer.getvalue().encode()


def from_record(rec: Mapping[str, Any], *, from_csv: bool = False) -> RequestRow:
    """The RequestRow a JSONL object or (``from_csv=True``) a CSV dict row, all strings, describes."""
    values: dict[str, Any] = {}
    for name in COLUMNS:
        value = rec.get(name)
        if value == "" and name != "prompt":
            value = None
        if from_csv and name not in _JSON_COLUMNS and isinstance(value, str) and value.startswith("'"):
            value = value[1:]  # the formula guard csv_lines added
        if name in _JSON_COLUMNS and isinstance(value, str):
            value = json.loads(value)
        if name in _TIME_COLUMNS and value is not None:
            value = datetime.fromisoformat(value)
        elif name in _INT_COLUMNS and value is not None:
            value = int(value)
        elif name in _FLOAT_COLUMNS and value is not None:
            value = float(value)
        if name in ("outputs", "completion_tokens"):
            value = tuple(value or ())
        values[name] = value
    return RequestRow(**values)
