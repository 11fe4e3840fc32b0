"""Rows and filters the store takes and gives."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

# The one list of request statuses; every other list of them is derived from these two types.
# withheld: generation stopped by a filter rule; the row keeps the full text for moderators.
FinalStatus = Literal["done", "failed", "cancelled", "interrupted", "expired", "rejected", "withheld"]
Status = Literal["queued", "running", FinalStatus]
FINAL_STATUSES: tuple[str, ...] = get_args(FinalStatus)
STATUSES: tuple[str, ...] = ("queued", "running", *FINAL_STATUSES)


@dataclass(frozen=True)
class NewRequest:
    """A request as it arrives, before any outcome."""

    source: Literal["discord", "cli"]
    prompt: str
    params: dict[str, Any]  # max_new_tokens, temperature, top_p, top_k, repetition_penalty, seed, variants
    model_name: str
    user_id: int | None = None
    user_name: str | None = None  # display name at the time
    guild_id: int | None = None
    channel_id: int | None = None
    interaction_id: int | None = None
    parent_id: int | None = None  # the request this one regenerates or continues


@dataclass(frozen=True)
class RequestRow:
    """One logged request with its outcome so far."""

    id: int
    source: str
    status: Status
    prompt: str
    params: dict[str, Any]
    model_name: str
    user_id: int | None
    user_name: str | None
    guild_id: int | None
    channel_id: int | None
    interaction_id: int | None
    parent_id: int | None
    seed: int | None
    outputs: tuple[str, ...]
    error: str | None  # failure reason, or the rejection/interruption reason
    prompt_tokens: int | None
    completion_tokens: tuple[int, ...]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    queue_s: float | None
    generation_s: float | None


@dataclass(frozen=True)
class RequestFilter:
    """Narrows recent/search/export/stats; every field is optional."""

    guild_id: int | None = None
    channel_id: int | None = None
    user_id: int | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None


@dataclass(frozen=True)
class ReportRow:
    """A member's flag on an output."""

    id: int
    request_id: int
    guild_id: int | None
    reporter_id: int
    reason: str
    created_at: datetime
    resolved_by: int | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None


@dataclass(frozen=True)
class FilterRuleRow:
    """A moderator's filter rule for one guild (kind word/regex, applies_to prompt/output/both, action block/flag)."""

    id: int
    guild_id: int
    kind: str
    pattern: str
    applies_to: str
    action: str
    reason: str
    created_by: int | None
    created_at: datetime


@dataclass(frozen=True)
class BanRow:
    """A user barred from the bot in a guild (guild_id None: everywhere)."""

    user_id: int
    guild_id: int | None
    banned_by: int | None
    reason: str | None
    since: datetime
    until: datetime | None = None


@dataclass(frozen=True)
class AuditRow:
    """One moderator or owner action."""

    id: int
    actor_id: int | None
    action: str
    target: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    guild_id: int | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class UserDayStats:
    """Counts for one user on one UTC day."""

    day: str
    user_id: int | None
    user_name: str | None
    requests: int
    failures: int
    mean_generation_s: float | None
    mean_queue_s: float | None


@dataclass(frozen=True)
class Stats:
    """Totals and per-user-per-day rows for a filter."""

    total: int
    by_status: dict[str, int]
    p50_generation_s: float | None
    p95_generation_s: float | None
    mean_queue_s: float | None
    per_user_day: tuple[UserDayStats, ...]


@dataclass(frozen=True)
class DatabaseHealth:
    """What ``continuebot doctor`` learns about the database file without changing it."""

    path: str
    exists: bool
    writable: bool
    schema_version: int | None
    supported_version: int
    newer_than_supported: bool
    integrity_ok: bool | None
    integrity_message: str | None
    size_bytes: int
    wal_bytes: int
