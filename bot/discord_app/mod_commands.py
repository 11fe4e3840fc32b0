"""The /mod command group: review, search, export, reports, bans. Checked and audited on every use."""

import logging
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Literal

import discord
from discord import app_commands

from bot.discord_app import mod_views
from bot.discord_app.access import check_moderator
from bot.discord_app.filter_commands import FilterGroup
from bot.discord_app.delivery import send_ephemeral
from bot.discord_app.pager import Fetch, Pager, Render
from bot.durations import parse_duration
from bot.errors import AccessDenied
from bot.services import Services
from storage.types import RequestFilter, Status

log = logging.getLogger(__name__)


class ModGroup(app_commands.Group):
    """/mod: every subcommand re-checks the moderator rule (default_permissions is only a hint)."""

    def __init__(self, services: Services) -> None:
        super().__init__(
            name="mod",
            description="Moderator tools: review what the bot was asked and what it said",
            guild_only=True,
            default_permissions=discord.Permissions(manage_messages=True),
        )
        self.services = services
        self.store = services.store
        if services.filters is not None:
            self.add_command(FilterGroup(services.filters, services.store, services.rules))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        try:
            check_moderator(self.services.rules, interaction)
        except AccessDenied as exc:  # only AppCommandErrors reach the tree's error handler
            raise app_commands.CheckFailure(exc.reason) from None
        return True

    async def _pager(self, interaction: discord.Interaction, fetch: Fetch, render: Render, again: str) -> None:
        timeout = self.services.view_timeouts.pager_s
        await Pager(interaction.user.id, fetch, render, again=again, timeout=timeout).show(interaction)

    async def _audit(self, interaction: discord.Interaction, action: str, target: str | None = None, **detail) -> None:
        await self.store.audit(interaction.user.id, action, target=target, detail=detail, guild_id=interaction.guild_id)

    @app_commands.command(name="recent", description="The latest requests in this server")
    @app_commands.describe(user="Only this member's requests", channel="Only this channel", status="Only this status")
    async def recent(
        self,
        interaction: discord.Interaction,
        user: discord.User | None = None,
        channel: discord.TextChannel | None = None,
        status: Status | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        filters = RequestFilter(
            guild_id=interaction.guild_id,
            user_id=user.id if user else None,
            channel_id=channel.id if channel else None,
            status=status,
        )
        await self._audit(interaction, "mod.recent", user=user and user.id, channel=channel and channel.id, status=status)

        async def fetch(before_id, limit):
            return await self.store.recent(filters, before_id=before_id, limit=limit)

        await self._pager(interaction, fetch, lambda rows: mod_views.requests_embed("Recent requests", rows), "/mod recent")

    @app_commands.command(name="search", description="Find requests whose prompt or output contains this text")
    @app_commands.describe(text="Words to find (matched literally)")
    async def search(self, interaction: discord.Interaction, text: app_commands.Range[str, 1, 200]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        filters = RequestFilter(guild_id=interaction.guild_id)
        await self._audit(interaction, "mod.search", text=text)

        async def fetch(before_id, limit):
            return await self.store.search(text, filters, before_id=before_id, limit=limit)

        title = f"Search: {mod_views.excerpt(text, 60)}"
        await self._pager(interaction, fetch, lambda rows: mod_views.requests_embed(title, rows), "/mod search")

    @app_commands.command(name="show", description="Everything logged about one request")
    @app_commands.describe(id="The request number, as shown under replies (#123)")
    async def show(self, interaction: discord.Interaction, id: app_commands.Range[int, 1]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        row = await self.store.get(id)
        await self._audit(interaction, "mod.show", target=f"request:{id}")
        if row is None or row.guild_id != interaction.guild_id:
            await interaction.followup.send(f"There is no request #{id} in this server.", ephemeral=True)
            return
        embed, file = mod_views.request_detail(row)
        await interaction.followup.send(embed=embed, file=file or discord.utils.MISSING, ephemeral=True)

    @app_commands.command(name="export", description="Download this server's requests as a file")
    @app_commands.describe(user="Only this member's requests", days="Only the last N days", format="csv (spreadsheets) or jsonl (scripts)")
    async def export(
        self,
        interaction: discord.Interaction,
        user: discord.User | None = None,
        days: app_commands.Range[int, 1, 3650] | None = None,
        format: Literal["csv", "jsonl"] = "csv",
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        since = discord.utils.utcnow() - timedelta(days=days) if days else None
        filters = RequestFilter(guild_id=interaction.guild_id, user_id=user.id if user else None, since=since)
        with tempfile.TemporaryDirectory(prefix="continuebot-export-") as tmp:
            name = f"continuebot-{interaction.guild_id}{'-' + str(user.id) if user else ''}.{format}"
            path = Path(tmp) / name
            count = await self.store.export_to(path, format, filters)
            await self._audit(interaction, "mod.export", user=user and user.id, days=days, format=format, rows=count)
            size = path.stat().st_size
            limit = getattr(interaction, "attachment_size_limit", None) or 10 * 1024 * 1024
            if size > limit:
                await interaction.followup.send(
                    f"The export is {size / 1e6:.1f} MB, over Discord's {limit / 1e6:.0f} MB limit. "
                    "Narrow it with `user` or `days`, or ask the owner to run `continuebot logs export`.",
                    ephemeral=True,
                )
                return
            await interaction.followup.send(
                f"{count} request{'s' if count != 1 else ''} exported.", file=discord.File(path, filename=name), ephemeral=True
            )

    @app_commands.command(name="reports", description="Open reports from members and the filter; resolve them here")
    async def reports(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self._audit(interaction, "mod.reports")
        guild_id = interaction.guild_id

        async def fetch(before_id, limit):
            return await self.store.open_reports(guild_id, before_id=before_id, limit=limit)

        async def resolve(report_id: int, clicked: discord.Interaction) -> None:
            await self.store.resolve_report(report_id, clicked.user.id)
            await self._audit(clicked, "mod.resolve_report", target=f"report:{report_id}")

        timeout = self.services.view_timeouts.pager_s
        await mod_views.ReportsPager(interaction.user.id, fetch, resolve, timeout=timeout).show(interaction)

    @app_commands.command(name="ban", description="Stop a member from using the bot in this server")
    @app_commands.describe(user="Who to ban", reason="Why (shown to moderators)", duration="How long, e.g. 30min, 12h, 1h30m, 2 weeks (empty: until unbanned)")
    async def ban(
        self,
        interaction: discord.Interaction,
        user: discord.User,
        reason: app_commands.Range[str, 1, 300] | None = None,
        duration: app_commands.Range[str, 1, 20] | None = None,
    ) -> None:
        try:
            until = discord.utils.utcnow() + parse_duration(duration) if duration else None
        except ValueError as exc:
            await send_ephemeral(interaction, f"Not banned: {exc}.")
            return
        await self.store.ban(user.id, interaction.guild_id, by=interaction.user.id, reason=reason, until=until)
        await self._audit(interaction, "mod.ban", target=f"user:{user.id}", reason=reason, until=until and until.isoformat())
        when = f" until {discord.utils.format_dt(until, 'f')}" if until else " until unbanned"
        await send_ephemeral(interaction, f"{user.mention} can no longer use the bot here{when}.")

    @app_commands.command(name="unban", description="Let a banned member use the bot again")
    @app_commands.describe(user="Who to unban")
    async def unban(self, interaction: discord.Interaction, user: discord.User) -> None:
        removed = await self.store.unban(user.id, interaction.guild_id)
        await self._audit(interaction, "mod.unban", target=f"user:{user.id}", removed=removed)
        text = f"{user.mention} can use the bot again." if removed else f"{user.mention} was not banned here."
        await send_ephemeral(interaction, text)

