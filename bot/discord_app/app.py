"""The discord.py client: registers commands, syncs them, routes buttons, answers every error."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.discord_app.boundary import answer_error
from bot.discord_app.buttons import ButtonRouter
from bot.discord_app.continue_command import continue_command
from bot.discord_app.delivery import send_ephemeral
from bot.discord_app.member_commands import forget_me_command, status_command
from bot.discord_app.mod_commands import ModGroup
from bot.discord_app.options import option_problem
from bot.services import Services

log = logging.getLogger(__name__)

class BotTree(app_commands.CommandTree):
    """The command tree: option values checked before discord.py parses them, every error through the boundary."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.type is not discord.InteractionType.application_command:
            return True
        problem = option_problem(self, interaction)
        if problem is not None:
            log.info("interaction %s: refused an option value: %s", interaction.id, problem)
            await send_ephemeral(interaction, f"I can't use that: {problem}")
            return False
        return True

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await answer_error(interaction, error)


class ContinueBot(discord.AutoShardedClient):
    """continuebot's client: sharded (SHARD_COUNT / SHARD_IDS), no privileged intents, never pings anyone.

    A plain ``discord.Client`` with a ``CommandTree``, as before, made an ``AutoShardedClient``: the
    sharded twin of ``commands.AutoShardedBot`` without the prefix-command machinery this bot does not use.
    """

    def __init__(self, services: Services, **options: Any) -> None:
        settings = services.settings
        if settings.shard_ids is not None:
            options["shard_ids"] = list(settings.shard_ids)
        super().__init__(
            intents=discord.Intents(guilds=True),
            shard_count=settings.shard_count,  # None: the count Discord recommends, asked at login
            allowed_mentions=discord.AllowedMentions.none(),
            max_messages=None,
            # Without the members intent nothing waits on the guild stream; don't hold READY long.
            guild_ready_timeout=options.pop("guild_ready_timeout", 1.0),
            **options,
        )
        self.services = services
        self.disconnected: set[int] = set()  # shards of this process that lost the gateway, until they return
        self.tree = BotTree(self)
        self.router = ButtonRouter(services)

    async def setup_hook(self) -> None:
        self.tree.add_command(continue_command(self.services))
        self.tree.add_command(ModGroup(self.services))
        self.tree.add_command(status_command(self.services))
        self.tree.add_command(forget_me_command(self.services))
        await self.sync_commands()

    async def sync_commands(self) -> None:
        """Sync to DISCORD_GUILD_IDS (instant) or globally (may take up to an hour to show).

        Commands belong to the application, not to a shard: only the process that runs shard 0 syncs,
        so processes of two versions during a rolling restart do not overwrite each other's commands.
        """
        settings = self.services.settings
        if not settings.runs_shard_zero():
            log.info("commands: not synced here; the process that runs shard 0 syncs them")
            return
        guild_ids = settings.discord_guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            log.info("synced %d commands globally", len(synced))
            return
        for guild_id in guild_ids:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(synced), guild_id)

    async def on_ready(self) -> None:
        log.info("connected as %s (id %s) in %d servers, shard(s) %s of %s", self.user, self.user and self.user.id,
                 len(self.guilds), self._shard_list(), self.shard_count)
        self._health(True, self._connected_text())

    def _shard_list(self) -> str:
        return ",".join(str(i) for i in sorted(self.shards))

    def _connected_text(self) -> str:
        plural = "s" if len(self.shards) != 1 else ""
        return f"connected to Discord (shard{plural} {self._shard_list()} of {self.shard_count})"

    async def on_shard_ready(self, shard_id: int) -> None:
        await self._shard_back(shard_id)

    async def on_shard_resumed(self, shard_id: int) -> None:
        await self._shard_back(shard_id)

    async def _shard_back(self, shard_id: int) -> None:
        self.disconnected.discard(shard_id)
        if not self.disconnected and self.is_ready():
            self._health(True, self._connected_text())

    async def on_shard_disconnect(self, shard_id: int) -> None:
        self.disconnected.add(shard_id)
        shards = ",".join(str(i) for i in sorted(self.disconnected))
        self._health(False, f"shard {shards} disconnected from Discord, reconnecting")

    def _health(self, healthy: bool, detail: str) -> None:
        if self.services.metrics is not None and self.services.jobs.accepting:
            self.services.metrics.set_health(healthy, detail)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        if interaction.type not in (discord.InteractionType.component, discord.InteractionType.modal_submit):
            return
        try:
            await self.router.dispatch(interaction)
        except Exception as exc:  # the error boundary: one reply, unknown errors logged once
            await answer_error(interaction, exc)
