"""What every command handler needs, built once in main() and passed to the bot."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.config import Settings
from bot.discord_app.access import AccessRules
from bot.discord_app.jobs import JobManager
from bot.filters import Filters
from bot.ops.metrics import Metrics
from models.engine import Engine
from storage import Store


@dataclass(frozen=True)
class ViewTimeouts:
    """How long buttons answer before their message says they expired (tests shorten them)."""

    confirm_s: float = 120.0  # the /forget-me confirmation
    pager_s: float = 600.0  # /mod pages


@dataclass
class Services:
    """The store, the engine, the job manager, the filter and the settings, shared by all handlers."""

    settings: Settings
    store: Store
    engine: Engine
    jobs: JobManager
    rules: AccessRules
    metrics: Metrics | None = None
    filters: Filters | None = None
    view_timeouts: ViewTimeouts = field(default_factory=ViewTimeouts)
    inference_health: str | None = None  # the last probe of INFERENCE_URL, for /status; None: in-process model
