"""The one place settings are read: ``.env`` plus the environment, parsed once into ``Settings``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast, get_args

from dotenv import dotenv_values

from bot.errors import ConfigError, InvalidSettings
from models.types import EngineConfig, GenerationParams, ParamLimits, PromptOverflow

T = TypeVar("T")

# Bot tokens are three base64url parts separated by dots: user id, timestamp, HMAC.
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{17,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{20,}$")
TOKEN_FIX = "copy it from the Developer Portal (your app > Bot > Reset Token) into .env"
DEVICE_SHAPE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "float16", "bfloat16")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
PROMPT_OVERFLOWS: tuple[PromptOverflow, ...] = get_args(PromptOverflow)


@dataclass(frozen=True)
class Settings:
    """Every setting continuebot reads; ``.env.example`` documents each one."""

    # Discord
    discord_token: str | None = field(default=None, repr=False)
    discord_guild_ids: tuple[int, ...] = ()
    discord_api_base: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg/"
    shard_count: int | None = None  # None: the count Discord recommends (GET /gateway/bot)
    shard_ids: tuple[int, ...] | None = None  # None: every shard, in this process
    # Model and engine: the engine's defaults are written once, in models.types
    model_name: str | None = EngineConfig.model_name
    device: str = EngineConfig.device
    dtype: str = EngineConfig.dtype
    model_cache_dir: Path = EngineConfig.cache_dir
    max_batch_size: int = EngineConfig.max_batch_size
    max_queue_size: int = EngineConfig.max_queue_size
    max_pending_per_user: int = EngineConfig.max_pending_per_user
    request_timeout_s: float = EngineConfig.request_timeout_s
    prompt_overflow: PromptOverflow = EngineConfig.prompt_overflow
    max_new_tokens: int = ParamLimits.max_new_tokens
    default_max_new_tokens: int = GenerationParams.max_new_tokens
    max_variants: int = ParamLimits.max_variants
    max_prompt_chars: int = ParamLimits.max_prompt_chars
    torch_threads: int = EngineConfig.torch_threads
    pack_weights: bool = EngineConfig.pack_weights
    batch_wait_ms: float = EngineConfig.batch_wait_s * 1000
    # Remote inference (an OpenAI-compatible server such as vLLM); empty URL = the in-process model
    inference_url: str | None = EngineConfig.inference_url
    inference_model: str | None = EngineConfig.inference_model
    inference_api_key: str | None = field(default=None, repr=False)
    inference_concurrency: int = EngineConfig.inference_concurrency
    inference_timeout_s: float = EngineConfig.inference_timeout_s
    # Storage
    database_path: Path = Path("continuebot.db")
    log_retention_days: int = 0
    # Access
    allowed_channel_ids: tuple[int, ...] = ()
    allowed_role_ids: tuple[int, ...] = ()
    moderator_role_ids: tuple[int, ...] = ()
    allow_dms: bool = False
    user_cooldown_s: float = 0.0
    # Moderation
    filter_file: Path | None = None  # the owner's filter rules for every server, one a line
    # Operations
    shutdown_grace_s: float = 30.0
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    log_file: Path | None = None
    log_level: str = "INFO"

    def engine_config(self) -> EngineConfig:
        """The part of the settings the inference engine needs."""
        return EngineConfig(
            model_name=self.model_name,
            device=self.device,
            dtype=self.dtype,
            cache_dir=self.model_cache_dir,
            # with a server, the rows in flight are the requests it runs at once (INFERENCE_CONCURRENCY)
            max_batch_size=self.max_batch_size or (self.inference_concurrency if self.inference_url else 0),
            max_queue_size=self.max_queue_size,
            max_pending_per_user=self.max_pending_per_user,
            request_timeout_s=self.request_timeout_s,
            prompt_overflow=self.prompt_overflow,
            limits=ParamLimits(
                max_new_tokens=self.max_new_tokens,
                max_variants=self.max_variants,
                max_prompt_chars=self.max_prompt_chars,
            ),
            torch_threads=self.torch_threads,
            pack_weights=self.pack_weights,
            batch_wait_s=self.batch_wait_ms / 1000,
            inference_url=self.inference_url,
            inference_model=self.inference_model,
            inference_api_key=self.inference_api_key,
            inference_concurrency=self.inference_concurrency,
            inference_timeout_s=self.inference_timeout_s,
        )

    def runs_shard_zero(self) -> bool:
        """Whether this process runs shard 0: it alone syncs commands and receives DMs."""
        return self.shard_ids is None or 0 in self.shard_ids

    def require_token(self) -> str:
        """The Discord token, or a ConfigError saying what is wrong with it (never its value)."""
        check_token(self.discord_token)
        assert self.discord_token is not None
        return self.discord_token


def check_token(token: str | None) -> None:
    """Raise ConfigError unless ``token`` has the shape of a Discord bot token."""
    if not token:
        raise ConfigError("DISCORD_TOKEN", "is not set", TOKEN_FIX)
    if token.lower().startswith("bot "):
        raise ConfigError("DISCORD_TOKEN", "must be the bare token, without the 'Bot ' prefix")
    if not TOKEN_SHAPE.match(token):
        raise ConfigError("DISCORD_TOKEN", "does not look like a bot token (three dot-separated parts)", TOKEN_FIX)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Read ``env_file`` (if it exists) under ``environ`` (which wins) and validate every value."""
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    return _Parser(values).settings()


class _Parser:
    """Turns raw strings into typed values; every error is collected (naming its setting), none stops the pass."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.errors: list[ConfigError] = []

    def error(self, name: str, message: str, default: T) -> T:
        self.errors.append(ConfigError(name, message))
        return default

    def raw(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def get(self, name: str, parse: Callable[[str], T], default: T, what: str) -> tuple[T, bool]:
        """The parsed value and whether it parsed (the default when missing or bad)."""
        value = self.raw(name)
        if value is None:
            return default, True
        try:
            return parse(value), True
        except (ValueError, TypeError):
            return self.error(name, f"must be {what}, got {value!r}", default), False

    def int_in(self, name: str, default: int, low: int, high: int | None = None) -> int:
        what = f"a whole number from {low}" + (f" to {high}" if high is not None else " up")
        value, parsed = self.get(name, int, default, what)
        if parsed and (value < low or (high is not None and value > high)):
            return self.error(name, f"must be {what}, got {value}", default)
        return value

    def float_in(self, name: str, default: float, low: float, high: float | None = None) -> float:
        what = f"a number from {low:g}" + (f" to {high:g}" if high is not None else " up")
        value, parsed = self.get(name, float, default, what)
        if parsed and (not (value >= low) or (high is not None and value > high)):
            return self.error(name, f"must be {what}, got {value}", default)
        return value

    def ids(self, name: str) -> tuple[int, ...]:
        value = self.raw(name)
        if value is None:
            return ()
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            return self.error(name, f"must be a comma-separated list of numeric Discord ids, got {value!r}", ())
        return tuple(int(p) for p in parts)

    def shards(self) -> tuple[int | None, tuple[int, ...] | None]:
        """SHARD_COUNT and SHARD_IDS, checked together: ids need a count, and each must be below it."""
        count: int | None = None
        if self.raw("SHARD_COUNT") is not None:
            errors = len(self.errors)
            count = self.int_in("SHARD_COUNT", 1, 1, 65535)
            count = count if len(self.errors) == errors else None
        value = self.raw("SHARD_IDS")
        if value is None:
            return count, None
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            return count, self.error("SHARD_IDS", f"must be a comma-separated list of shard numbers, got {value!r}",
                                     None)
        ids = tuple(int(p) for p in parts)
        if len(set(ids)) != len(ids):
            return count, self.error("SHARD_IDS", f"lists a shard twice: {value!r}", None)
        if count is None:
            if self.raw("SHARD_COUNT") is None:  # a bad SHARD_COUNT is reported already
                self.error("SHARD_IDS", "needs SHARD_COUNT (the total number of shards across every process)", None)
            return None, None
        if any(i >= count for i in ids):
            return count, self.error("SHARD_IDS", f"must be shard numbers from 0 to {count - 1} "
                                                  f"(SHARD_COUNT={count}), got {value!r}", None)
        return count, ids

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return self.error(name, f"must be true or false, got {value!r}", default)

    def choice(self, name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            return default
        value = value.upper() if upper else value.lower()
        if value not in choices:
            return self.error(name, f"must be one of {', '.join(choices)}, got {value!r}", default)
        return value

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if not value.startswith(tuple(f"{s}://" for s in schemes)):
            return self.error(name, f"must be a {' or '.join(schemes)} URL, got {value!r}", default)
        return value.rstrip("/") if "http" in schemes else value

    def path(self, name: str, default: Path) -> Path:
        value = self.raw(name)
        return Path(value) if value else default

    def settings(self) -> Settings:
        """Every setting, or InvalidSettings listing each one that is wrong."""
        d = Settings  # the defaults, each written once: in Settings (engine ones come from models.types)
        device = (self.raw("DEVICE") or d.device).lower()
        if not DEVICE_SHAPE.match(device):
            device = self.error("DEVICE", f"must be auto, cpu, cuda or cuda:N, got {device!r}", d.device)
        max_new = self.int_in("MAX_NEW_TOKENS", d.max_new_tokens, 1, 4096)
        default_new = self.int_in("DEFAULT_MAX_NEW_TOKENS", min(d.default_max_new_tokens, max_new), 1, 4096)
        if default_new > max_new:
            default_new = self.error(
                "DEFAULT_MAX_NEW_TOKENS", f"must not exceed MAX_NEW_TOKENS ({max_new})", min(default_new, max_new)
            )
        log_file = self.raw("LOG_FILE")
        shard_count, shard_ids = self.shards()
        settings = Settings(
            discord_token=self.raw("DISCORD_TOKEN"),
            discord_guild_ids=self.ids("DISCORD_GUILD_IDS"),
            discord_api_base=self.url("DISCORD_API_BASE", d.discord_api_base, ("http", "https")),
            discord_gateway_url=self.url("DISCORD_GATEWAY_URL", d.discord_gateway_url, ("ws", "wss")),
            shard_count=shard_count,
            shard_ids=shard_ids,
            model_name=self.raw("MODEL_NAME"),
            device=device,
            dtype=self.choice("DTYPE", d.dtype, DTYPES),
            model_cache_dir=self.path("MODEL_CACHE_DIR", d.model_cache_dir),
            max_batch_size=self.int_in("MAX_BATCH_SIZE", d.max_batch_size, 0, 256),  # 0: by device
            max_queue_size=self.int_in("MAX_QUEUE_SIZE", d.max_queue_size, 1),
            max_pending_per_user=self.int_in("MAX_PENDING_PER_USER", d.max_pending_per_user, 1),
            request_timeout_s=self.float_in("REQUEST_TIMEOUT_S", d.request_timeout_s, 1.0),
            prompt_overflow=cast(PromptOverflow, self.choice("PROMPT_OVERFLOW", d.prompt_overflow, PROMPT_OVERFLOWS)),
            max_new_tokens=max_new,
            default_max_new_tokens=default_new,
            max_variants=self.int_in("MAX_VARIANTS", d.max_variants, 1, 5),
            max_prompt_chars=self.int_in("MAX_PROMPT_CHARS", d.max_prompt_chars, 1, 100_000),
            torch_threads=self.int_in("TORCH_THREADS", d.torch_threads, 0, 1024),
            pack_weights=self.flag("PACK_WEIGHTS", d.pack_weights),
            batch_wait_ms=self.float_in("BATCH_WAIT_MS", d.batch_wait_ms, 0.0, 1000.0),
            inference_url=self.url("INFERENCE_URL", "", ("http", "https")) or None,
            inference_model=self.raw("INFERENCE_MODEL"),
            inference_api_key=self.raw("INFERENCE_API_KEY"),
            inference_concurrency=self.int_in("INFERENCE_CONCURRENCY", d.inference_concurrency, 1, 1024),
            inference_timeout_s=self.float_in("INFERENCE_TIMEOUT_S", d.inference_timeout_s, 1.0, 3600.0),
            database_path=self.path("DATABASE_PATH", d.database_path),
            log_retention_days=self.int_in("LOG_RETENTION_DAYS", d.log_retention_days, 0),
            allowed_channel_ids=self.ids("ALLOWED_CHANNEL_IDS"),
            allowed_role_ids=self.ids("ALLOWED_ROLE_IDS"),
            moderator_role_ids=self.ids("MODERATOR_ROLE_IDS"),
            allow_dms=self.flag("ALLOW_DMS", d.allow_dms),
            user_cooldown_s=self.float_in("USER_COOLDOWN_S", d.user_cooldown_s, 0.0),
            filter_file=Path(filter_file) if (filter_file := self.raw("FILTER_FILE")) else None,
            shutdown_grace_s=self.float_in("SHUTDOWN_GRACE_S", d.shutdown_grace_s, 0.0, 600.0),
            metrics_port=self.int_in("METRICS_PORT", d.metrics_port, 0, 65535),
            metrics_host=self.raw("METRICS_HOST") or d.metrics_host,
            log_file=Path(log_file) if log_file else None,
            log_level=self.choice("LOG_LEVEL", d.log_level, LOG_LEVELS, upper=True),
        )
        if self.errors:
            raise InvalidSettings(self.errors)
        return settings
