"""Shared state of one fake Discord: world, messages, interactions, commands, recorded calls, knobs."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import ApiError, UsageError, already_acknowledged, unknown_interaction
from .messages import MessageStore
from .records import Attachment, Call, FakeInteraction
from .waiting import Notifier
from .world import World

ERRORS_BY_CODE = MappingProxyType({
    10062: lambda: unknown_interaction(),
    40060: lambda: already_acknowledged(),
    10015: lambda: ApiError(404, 10015, "Unknown Webhook"),
    50027: lambda: ApiError(401, 50027, "Invalid Webhook Token"),
    50013: lambda: ApiError(403, 50013, "Missing Permissions"),
    500: lambda: ApiError(500, 0, "500: Internal Server Error"),
})


def error_for_code(code: int) -> ApiError:
    """The response Discord gives for one of its JSON error codes (unknown codes: a 400 with that code)."""
    factory = ERRORS_BY_CODE.get(code)
    return factory() if factory else ApiError(400, code, f"Error {code}")


@dataclass
class RateLimitRule:
    pattern: re.Pattern[str]
    method: str | None
    retry_after: float
    remaining: int
    is_global: bool

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and (self.method in (None, method)) and bool(self.pattern.search(path))


@dataclass
class Knobs:
    """Failure injection and timing settings, changed by the FakeDiscord methods."""

    token_lifetime: float = 15 * 60.0
    callback_deadline: float | None = None
    rest_latency: float = 0.0
    attachment_size_limit: int = 10 * 1024 * 1024
    recommended_shards: int = 1  # what GET /gateway/bot answers
    failures: dict[int | str, int] = field(default_factory=dict)  # interaction id or token -> error code
    fail_next: list[int] = field(default_factory=list)  # codes for the next interactions created
    expired_tokens: set[str] = field(default_factory=set)
    rate_limits: list[RateLimitRule] = field(default_factory=list)


class FakeState:
    """Everything the REST API, the gateway and the test-facing FakeDiscord share."""

    def __init__(self, world: World, token: str, knobs: Knobs) -> None:
        self.world = world
        self.token = token
        self.knobs = knobs
        self.notifier = Notifier()
        self.http_base = ""  # set once the server listens
        self.store = MessageStore(world, self.now, lambda: self.http_base)
        self.calls: list[Call] = []
        self.unknown_calls: list[Call] = []
        self.interactions: dict[int, FakeInteraction] = {}
        self.interactions_by_token: dict[str, FakeInteraction] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}  # guild id (None: global) -> commands
        self.uploads: dict[int, Attachment] = {}  # attachments users gave as command options

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    def add_interaction(self, interaction: FakeInteraction) -> None:
        self.interactions[interaction.id] = interaction
        self.interactions_by_token[interaction.token] = interaction
        if self.knobs.fail_next:
            self.knobs.failures[interaction.id] = self.knobs.fail_next.pop(0)

    def find_interaction(self, key: int | str | FakeInteraction) -> FakeInteraction | None:
        if isinstance(key, FakeInteraction):
            return key
        if isinstance(key, str) and key in self.interactions_by_token:
            return self.interactions_by_token[key]
        try:
            return self.interactions.get(int(key))
        except ValueError:
            return None

    def take_failure(self, interaction: FakeInteraction) -> int | None:
        """The injected error code for this interaction's callback, consumed once."""
        for key in (interaction.id, interaction.token):
            if key in self.knobs.failures:
                return self.knobs.failures.pop(key)
        return None

    def token_expired(self, interaction: FakeInteraction) -> bool:
        if interaction.token in self.knobs.expired_tokens:
            return True
        return self.now() - interaction.sent_at > self.knobs.token_lifetime

    def find_command(self, name: str, guild_id: int | None) -> dict[str, Any] | None:
        scopes = ([guild_id] if guild_id else []) + [None]
        for scope in scopes:
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == 1:
                    return command
        return None

    def command_names(self) -> list[str]:
        return sorted({f"{c['name']}" + (f" (guild {g})" if g else "") for g, cs in self.commands.items() for c in cs})

    def require_interaction(self, key: int | str | FakeInteraction) -> FakeInteraction:
        interaction = self.find_interaction(key)
        if interaction is None:
            raise UsageError(f"unknown interaction {key!r}")
        return interaction
