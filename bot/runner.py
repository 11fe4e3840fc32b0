"""``continuebot run``: owns every lifetime (store, engine, metrics, bot) and the graceful stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator

from typing import TYPE_CHECKING, Any

from bot.config import Settings
from bot.ops.logging_setup import setup_logging
from models.errors import ModelLoadError
from storage.errors import StorageError

if TYPE_CHECKING:  # discord.py, torch and transformers load when the bot starts, not for --help
    from bot.safety.rules import Rule
    from bot.discord_app.app import ContinueBot
    from bot.discord_app.jobs import JobOptions
    from bot.services import Services

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 20.0  # after the engine stops: time to deliver the last messages
INFERENCE_PROBE_S = 15.0  # with INFERENCE_URL: how often the server is probed for /status, /healthz and metrics


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the Discord bot (needs DISCORD_TOKEN)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Validate the token, set up logging, serve until SIGTERM/SIGINT."""
    token = settings.require_token()
    setup_logging(settings.log_level, settings.log_file, secrets=(token,))
    return asyncio.run(serve(settings, token, handle_signals=True))


@contextlib.contextmanager
def discord_endpoints(settings: Settings) -> Iterator[None]:
    """Point discord.py at DISCORD_API_BASE / DISCORD_GATEWAY_URL (its class attributes), then restore."""
    import discord
    import yarl

    old_base, old_gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = settings.discord_api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway


def _install_signals(stop: asyncio.Event) -> Callable[[], None]:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s received: finishing the running batch, then stopping", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    def remove() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    return remove


async def serve(
    settings: Settings,
    token: str,
    *,
    stop: asyncio.Event | None = None,
    handle_signals: bool = False,
    job_options: JobOptions | None = None,
    on_bot: Callable[[ContinueBot], Any] | None = None,
    backend_factory: Callable[..., Any] | None = None,
) -> int:
    """Run until ``stop`` is set (or a signal); returns the process exit code.

    ``on_bot`` sees the client once it exists; ``backend_factory`` lets tests wrap the model.
    """
    from bot.discord_app.jobs import JobOptions
    from bot.safety.errors import RuleFileError
    from bot.safety.rule_file import load_rule_file

    stop = stop or asyncio.Event()
    try:
        file_rules = load_rule_file(settings.filter_file) if settings.filter_file else ()
    except RuleFileError as exc:
        print(f"continuebot: FILTER_FILE: {exc}", file=sys.stderr)
        return 2
    log.info("filter: %d rule(s) from FILTER_FILE for every server", len(file_rules))
    remove_signals = _install_signals(stop) if handle_signals else (lambda: None)
    try:
        with discord_endpoints(settings):
            return await _serve(settings, token, stop, job_options or JobOptions(), on_bot, backend_factory,
                                file_rules)
    except ModelLoadError as exc:
        print(f"continuebot: the model could not be loaded: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"continuebot: the database could not be opened: {exc}", file=sys.stderr)
        return 1
    finally:
        remove_signals()


async def _serve(
    settings: Settings,
    token: str,
    stop: asyncio.Event,
    job_options: JobOptions,
    on_bot: Callable[[ContinueBot], Any] | None,
    backend_factory: Callable[..., Any] | None,
    file_rules: tuple[Rule, ...],
) -> int:
    from bot.discord_app.access import AccessRules, Cooldowns
    from bot.discord_app.app import ContinueBot
    from bot.discord_app.jobs import JobManager
    from bot.filters import Filters
    from bot.lifecycle import RequestLifecycle
    from bot.ops.metrics import Metrics
    from bot.services import Services
    from models.engine import Engine
    from storage import Store

    metrics = Metrics() if settings.metrics_port else None
    async with Store(settings.database_path, retention_days=settings.log_retention_days) as store:
        log.info("loading the model (first start converts it; later starts take seconds)")
        progress = lambda message: log.info("model: %s", message)  # noqa: E731
        # The model loads on the engine's inference thread (torch is first imported there), unless a test wraps it.
        engine_ = (Engine(settings.engine_config(), progress=progress) if backend_factory is None
                   else Engine(settings.engine_config(), progress=progress, backend_factory=backend_factory))
        async with engine_ as engine:
            jobs = JobManager(
                store=store,
                engine=engine,
                rules=AccessRules(
                    allowed_channel_ids=settings.allowed_channel_ids,
                    allowed_role_ids=settings.allowed_role_ids,
                    moderator_role_ids=settings.moderator_role_ids,
                    allow_dms=settings.allow_dms,
                ),
                cooldowns=Cooldowns(settings.user_cooldown_s),
                model_name=engine.status().model_name,
                lifecycle=RequestLifecycle(store, engine, metrics),
                options=job_options,
                filters=Filters(store, file_rules),
            )
            services = Services(settings, store, engine, jobs, jobs.rules, metrics, jobs.filters)
            if metrics is not None:
                await metrics.start(settings.metrics_host, settings.metrics_port)
            try:
                return await _run_bot(ContinueBot(services), token, stop, on_bot)
            finally:
                if metrics is not None:
                    await metrics.stop()


async def _run_bot(bot: ContinueBot, token: str, stop: asyncio.Event, on_bot: Callable[[ContinueBot], Any] | None) -> int:
    services = bot.services
    async with bot:
        if on_bot is not None:
            on_bot(bot)
        connection = asyncio.create_task(bot.start(token), name="discord-connection")
        watcher = asyncio.create_task(_watch_engine(services, bot), name="engine-metrics")
        prober = asyncio.create_task(_watch_inference(services), name="inference-probe")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if connection.done() and not stop.is_set():
                return _connection_ended(connection)
            await _graceful_stop(services)
            return 0
        finally:
            for task in (connection, watcher, prober, stopping):
                task.cancel()
            await asyncio.gather(connection, watcher, prober, stopping, return_exceptions=True)


def _connection_ended(connection: asyncio.Task[None]) -> int:
    import discord

    exc = connection.exception()
    if isinstance(exc, discord.LoginFailure):
        print("continuebot: DISCORD_TOKEN was rejected by Discord; copy it again from the Developer Portal", file=sys.stderr)
        return 2
    if exc is not None:
        log.error("the Discord connection failed", exc_info=exc)
        return 1
    log.info("the Discord connection closed")
    return 0


async def _graceful_stop(services: Services) -> None:
    """Stop taking requests, let the running batch finish within the grace period, tell the rest."""
    grace = services.settings.shutdown_grace_s
    log.info("stopping: refusing new requests, up to %.0f s for the running batch", grace)
    services.jobs.accepting = False
    if services.metrics is not None:
        services.metrics.set_health(False, "shutting down")
    await services.engine.shutdown(grace)
    await services.jobs.drain(DRAIN_TIMEOUT_S)
    log.info("stopped cleanly")


async def _watch_engine(services: Services, bot: ContinueBot) -> None:
    """Keep the metrics' engine gauges and each shard's gateway latency current."""
    if services.metrics is None:
        return
    while True:
        status = services.engine.status()
        services.metrics.set_engine(status.queue_length, status.running, status.tokens_per_s)
        services.metrics.set_latencies(bot.latencies)
        await asyncio.sleep(1.0)


async def _watch_inference(services: Services) -> None:
    """With INFERENCE_URL, probe the server every ``INFERENCE_PROBE_S`` for /status, /healthz and metrics."""
    config = services.settings.engine_config()
    if not config.inference_url:
        return
    from models.remote import probe_endpoint

    was_up: bool | None = None
    while True:
        health = await probe_endpoint(config)
        services.inference_health = f"{'up' if health.up else 'DOWN'}: {health.detail}"
        if services.metrics is not None:
            services.metrics.set_inference(health.up, health.detail)
        if health.up != was_up:
            (log.info if health.up else log.warning)("inference server %s: %s", "up" if health.up else "down",
                                                     health.detail)
            was_up = health.up
        await asyncio.sleep(INFERENCE_PROBE_S)
