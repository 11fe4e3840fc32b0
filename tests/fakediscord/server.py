"""FakeDiscord: a protocol-level Discord (REST + gateway) on 127.0.0.1 for the real discord.py client."""

from __future__ import annotations

import contextlib
import re
from typing import Any, Callable, Iterable, Iterator

from aiohttp import web

from . import ids
from .errors import UsageError
from .gateway import OP_INVALID_SESSION, OP_RECONNECT, Gateway, GatewayEvent
from .interactions import InteractionBuilder, snowflake_of
from .records import Call, FakeInteraction, Message
from .rest import API_PREFIX, RestApi
from .state import FakeState, Knobs, RateLimitRule
from .world import Channel, Guild, Member, Role, World, default_world


class FakeDiscord:
    """`async with FakeDiscord() as fake:` serves Discord's REST API and gateway on a random local port.

    Point discord.py at it with `with fake.patch_discord(): ...`, run the bot with its token
    (`fake.token`), then drive users with `slash`, `click` and `submit_modal` and inspect what
    the bot did through the returned FakeInteraction objects and `fake.calls`.
    """

    def __init__(self, *, world: World | None = None, token: str = ids.FAKE_TOKEN,
                 heartbeat_interval: float = 5.0, token_lifetime: float = 15 * 60.0,
                 callback_deadline: float | None = None, rest_latency: float = 0.0,
                 attachment_size_limit: int = 10 * 1024 * 1024, recommended_shards: int = 1) -> None:
        self.world = world or default_world()
        self.knobs = Knobs(token_lifetime=token_lifetime, callback_deadline=callback_deadline,
                           rest_latency=rest_latency, attachment_size_limit=attachment_size_limit,
                           recommended_shards=recommended_shards)
        self.state = FakeState(self.world, token, self.knobs)
        self.gateway = Gateway(self.state, int(heartbeat_interval * 1000), lambda: self.gateway_url)
        self.rest = RestApi(self.state, lambda: self.gateway_url)
        self.builder = InteractionBuilder(self.state)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ---- lifetime ----
    async def start(self) -> None:
        app = web.Application()
        self.rest.install(app)
        app.router.add_get("/gateway", self.gateway.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.state.http_base = f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ---- addresses and discord.py wiring ----
    @property
    def token(self) -> str:
        return self.state.token

    @property
    def http_base(self) -> str:
        return self.state.http_base

    @property
    def api_base(self) -> str:
        """Value for discord.http.Route.BASE (and DISCORD_API_BASE)."""
        return self.state.http_base + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """Value for DiscordWebSocket.DEFAULT_GATEWAY (and DISCORD_GATEWAY_URL); also READY's resume URL."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Points discord.py (REST and gateway, process-wide) at this fake; restores on exit."""
        import discord.gateway
        import discord.http
        import yarl

        old_base, old_gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # ---- what happened ----
    @property
    def application_id(self) -> int:
        return self.world.application_id

    @property
    def bot_id(self) -> int:
        return self.world.bot.id

    @property
    def calls(self) -> list[Call]:
        return self.state.calls

    @property
    def unknown_calls(self) -> list[Call]:
        """Requests to endpoints the fake does not implement (answered 404): tests should keep it empty."""
        return self.state.unknown_calls

    @property
    def gateway_events(self) -> list[GatewayEvent]:
        """Every payload the client sent on the gateway (IDENTIFY, RESUME, HEARTBEAT...)."""
        return self.gateway.events

    @property
    def messages(self) -> dict[int, Message]:
        """Every message the bot created (deleted ones have .deleted set)."""
        return self.state.store.messages

    @property
    def interactions(self) -> list[FakeInteraction]:
        return list(self.state.interactions.values())

    @property
    def commands(self) -> dict[int | None, list[dict[str, Any]]]:
        """Synced commands by scope: None for global, else the guild id."""
        return self.state.commands

    def calls_matching(self, method: str | None = None, path: str | None = None,
                       route: str | None = None) -> list[Call]:
        """Calls by method, a regex searched in the path, and/or an exact route template."""
        return [c for c in self.calls if _call_matches(c, method, path, route)]

    def message_calls(self) -> list[Call]:
        """Every call that created or edited a message (callbacks 4/7, webhooks, channel messages)."""
        return [c for c in self.calls if c.message_payload is not None]

    def channel_messages(self, channel_id: int = ids.CHANNEL_ID) -> list[Message]:
        return [m for m in self.messages.values() if m.channel_id == channel_id and not m.deleted]

    # ---- world ----
    def add_guild(self, guild_id: int | None = None, name: str = "Another Guild", **kwargs: Any) -> Guild:
        return self.world.add_guild(guild_id, name, **kwargs)

    def add_channel(self, guild_id: int, name: str, **kwargs: Any) -> Channel:
        return self.world.add_channel(guild_id, name, **kwargs)

    def add_role(self, guild_id: int, name: str, permissions: int = 0, **kwargs: Any) -> Role:
        return self.world.add_role(guild_id, name, permissions, **kwargs)

    def add_member(self, guild_id: int, user_id: int | None, name: str, roles: list[int] | None = None,
                   permissions: int | None = None) -> Member:
        return self.world.add_member(guild_id, user_id, name, roles, permissions)

    # ---- failure injection ----
    def fail_interaction(self, target: int | str | FakeInteraction | None = None, code: int = 10062) -> None:
        """The callback of `target` (id, token or interaction; None: the next interaction sent) fails with `code`.

        10062 answers 404 Unknown interaction, 40060 400 already acknowledged, others as Discord would.
        """
        if target is None:
            self.knobs.fail_next.append(code)
        else:
            self.knobs.failures[target.id if isinstance(target, FakeInteraction) else target] = code

    def expire_token(self, target: str | FakeInteraction) -> None:
        """From now on the interaction's token is dead: callback 10062, webhooks 401 Invalid Webhook Token."""
        interaction = self.state.require_interaction(target)
        interaction.expired = True
        self.knobs.expired_tokens.add(interaction.token)

    def rate_limit_next(self, path_regex: str, retry_after: float = 0.1, *, method: str | None = None,
                        count: int = 1, is_global: bool = False) -> None:
        """The next `count` requests whose path matches get a 429 (discord.py sleeps `retry_after` and retries)."""
        self.knobs.rate_limits.append(RateLimitRule(re.compile(path_regex), method, retry_after, count, is_global))

    # ---- gateway ----
    async def wait_until_connected(self, timeout: float = 10.0, *, shards: Iterable[int] | None = None) -> None:
        """Waits until a client has identified (READY and GUILD_CREATEs sent) and is connected; with
        ``shards``, until a session of each of those shard ids is."""
        if shards is None:
            await self.state.notifier.wait_for(self.gateway.connected, timeout, lambda: "a gateway connection")
            return
        wanted = set(shards)
        await self.state.notifier.wait_for(lambda: wanted <= self.gateway.connected_shards(), timeout,
                                           lambda: f"gateway sessions of shards {sorted(wanted)} "
                                                   f"(connected: {sorted(self.gateway.connected_shards())})")

    def shard_of(self, guild_id: int) -> int:
        """The shard that receives this guild's events, by the count its bot identified with."""
        session = self.gateway.session_for(guild_id)
        return session.shard_id

    async def dispatch(self, event: str, data: Any) -> int:
        """Sends any gateway dispatch to the bot; returns its sequence number."""
        return await self.gateway.dispatch(event, data)

    async def disconnect_gateway(self, code: int | None = 4000, *, wait: bool = True, timeout: float = 15.0,
                                 shard: int | None = None) -> None:
        """Drops the bot's gateway connection (code None: abort TCP, like a 1006), or that of one shard's
        session, and, with wait, awaits the client's return (RESUME or new IDENTIFY)."""
        before = len(self.gateway.events)
        await self.gateway.disconnect(code, shard)
        connected = self.gateway.connected if shard is None else lambda: shard in self.gateway.connected_shards()
        if wait:
            await self.wait_for(lambda: connected() and any(
                e.op in (2, 6) for e in self.gateway.events[before:]), timeout, "the client to reconnect")

    async def request_reconnect(self) -> None:
        """Sends op 7 RECONNECT: the client closes and resumes."""
        await self.gateway.send_op(OP_RECONNECT, None)

    async def invalidate_session(self, resumable: bool = False) -> None:
        """Sends op 9 INVALID_SESSION: the client re-identifies (or resumes if resumable)."""
        await self.gateway.send_op(OP_INVALID_SESSION, resumable)

    # ---- driving users ----
    async def slash(self, name: str, options: dict[str, Any] | None = None, *, user: Any = ids.MEMBER_ID,
                    channel: Any = None, guild: Any = None, dm: bool = False, subcommand: str | None = None,
                    validate: bool = True, timeout: float = 10.0) -> FakeInteraction:
        """A user runs `/name` (or "group sub" / subcommand=...) with options typed by the synced command.

        Waits up to `timeout` for the bot to have synced the command. validate=False sends values the
        Discord client would refuse (out of range, too long) to test the bot's own checks.
        """
        user_id = snowflake_of(user)
        where = self._channel_for(user_id, channel, guild, dm)
        words = name.split() + (subcommand.split() if subcommand else [])
        command = await self.wait_for(lambda: self.state.find_command(words[0], where.guild_id), timeout,
                                      f"/{words[0]} to be synced (synced: {self.state.command_names()})")
        payload = self.builder.slash(command, words[1:], options or {}, user_id, where, validate)
        return await self._send(payload)

    async def click(self, message: Message | FakeInteraction | int, custom_id: str | None = None, *,
                    label: str | None = None, user: Any = None, values: list[str] | None = None,
                    force: bool = False) -> FakeInteraction:
        """A user clicks a button (or picks `values` in a select) on a message the bot sent."""
        target = self._message(message)
        component = target.find_component(custom_id, label)
        if component is None:
            found = [(c.get("custom_id"), c.get("label")) for c in target.iter_components() if c.get("custom_id")]
            raise UsageError(f"no component custom_id={custom_id!r} label={label!r} on {target}; it has {found}")
        if component.get("disabled") and not force:
            raise UsageError(f"component {component.get('custom_id')!r} is disabled: a user cannot use it")
        user_id = self._default_user(target, user)
        if target.ephemeral and target.interaction_id:
            owner = self.state.interactions[target.interaction_id].user_id
            if owner != user_id:
                raise UsageError("only the user who triggered an ephemeral message can see and click it")
        payload = self.builder.click(target, component, user_id, values)
        return await self._send(payload, source_message_id=target.id)

    async def submit_modal(self, source: FakeInteraction | Message, values: dict[str, Any] | None = None, *,
                           custom_id: str | None = None, user: Any = None) -> FakeInteraction:
        """A user fills and submits the modal the bot opened in answer to `source` (a FakeInteraction)."""
        values = values or {}
        if isinstance(source, FakeInteraction):
            if source.modal is None:
                raise UsageError(f"the bot answered no modal to {source}")
            modal = dict(source.modal)
            user_id = snowflake_of(user) if user is not None else source.user_id
            channel = self.world.channel(source.channel_id)
            message = self.state.store.get(source.source_message_id or 0)
        else:
            if custom_id is None:
                raise UsageError("submitting a modal from a message needs its custom_id")
            rows = [{"type": 1, "components": [{"type": 4, "custom_id": k}]} for k in values]
            modal, message = {"custom_id": custom_id, "components": rows}, source
            user_id = self._default_user(source, user)
            channel = self.world.channel(source.channel_id)
        if custom_id is not None:
            modal["custom_id"] = custom_id
        payload = self.builder.modal_submit(modal, values, user_id, channel, message)
        return await self._send(payload, source_message_id=message.id if message else None)

    def slash_payload(self, name: str, options: dict[str, Any] | None = None, *, user: Any = ids.MEMBER_ID,
                      subcommand: str | None = None) -> dict[str, Any]:
        """The INTERACTION_CREATE payload `slash` would send (unvalidated), for a test to alter into a stale or
        forged one before `send_payload`."""
        user_id = snowflake_of(user)
        where = self._channel_for(user_id, None, None, False)
        words = name.split() + (subcommand.split() if subcommand else [])
        command = self.state.find_command(words[0], where.guild_id)
        if command is None:
            raise UsageError(f"/{words[0]} is not synced (synced: {self.state.command_names()})")
        return self.builder.slash(command, words[1:], options or {}, user_id, where, False)

    async def send_payload(self, payload: dict[str, Any]) -> FakeInteraction:
        """Delivers a hand-made interaction payload: a stale client's command, a forged custom id."""
        return await self._send(payload)

    async def redeliver(self, interaction: FakeInteraction) -> None:
        """Delivers the same INTERACTION_CREATE again, as Discord may: its second callback gets 40060."""
        await self.gateway.dispatch("INTERACTION_CREATE", interaction.payload)

    async def _send(self, payload: dict[str, Any], source_message_id: int | None = None) -> FakeInteraction:
        interaction = FakeInteraction(payload=payload, sent_at=self.state.now(), notifier=self.state.notifier,
                                      messages=self.state.store.messages, source_message_id=source_message_id)
        self.state.add_interaction(interaction)
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return interaction

    def _channel_for(self, user_id: int, channel: Any, guild: Any, dm: bool) -> Channel:
        if dm:
            return self.world.dm_channel(user_id)
        if channel is not None:
            return self.world.channel(snowflake_of(channel))
        if guild is not None:
            chosen = self.world.guild(snowflake_of(guild))
            return next(iter(chosen.channels.values()))
        return self.world.channel(ids.CHANNEL_ID)

    def _message(self, message: Message | FakeInteraction | int) -> Message:
        if isinstance(message, FakeInteraction):
            if message.original is None:
                raise UsageError(f"{message} has no original response to click on")
            return message.original
        found = self.state.store.get(message.id if isinstance(message, Message) else int(message))
        if found is None:
            raise UsageError(f"no live message {message!r}")
        return found

    def _default_user(self, message: Message, user: Any) -> int:
        if user is not None:
            return snowflake_of(user)
        if message.interaction_id and message.interaction_id in self.state.interactions:
            return self.state.interactions[message.interaction_id].user_id
        return ids.MEMBER_ID

    # ---- waiting ----
    async def wait_for(self, probe: Callable[[], Any], timeout: float = 10.0, what: str = "a condition") -> Any:
        """Returns probe()'s first truthy value, re-checked after every request and gateway event."""
        return await self.state.notifier.wait_for(probe, timeout, lambda: what)

    async def wait_for_call(self, method: str | None = None, path: str | None = None, *, route: str | None = None,
                            predicate: Callable[[Call], bool] | None = None, since: int = 0,
                            timeout: float = 10.0) -> Call:
        """The first call (from index `since` in fake.calls) matching method, path regex, route and predicate."""
        def probe() -> Call | None:
            return next((c for c in self.calls[since:] if _call_matches(c, method, path, route)
                         and (predicate is None or predicate(c))), None)

        return await self.wait_for(probe, timeout, f"a call {method or '*'} {path or route or '*'}")


def _call_matches(call: Call, method: str | None, path: str | None, route: str | None) -> bool:
    return ((method is None or call.method == method.upper())
            and (path is None or re.search(path, call.path) is not None)
            and (route is None or call.route == route))
