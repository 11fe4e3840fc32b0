"""Commands for everyone: /status and /forget-me."""

import logging
import math
import time

import discord
from discord import app_commands

from bot.discord_app.mod_views import OwnedConfirm
from bot.services import Services

log = logging.getLogger(__name__)


def _uptime(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m" if days else f"{hours}h {minutes}m"


def _latency(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if math.isfinite(seconds) else "connecting"  # inf: no heartbeat yet


def shards_text(client: discord.Client, guild_id: int | None) -> str:
    """This process's shards of the total, each with its gateway latency, and the shard this server is on."""
    count = client.shard_count or 1
    latencies = client.latencies if isinstance(client, discord.AutoShardedClient) else [(0, client.latency)]
    lines = [f"{shard}: {_latency(latency)}" for shard, latency in sorted(latencies)]
    here = f"this server is on shard {(guild_id >> 22) % count}; " if guild_id is not None else ""
    return f"{here}this process runs {len(lines)} of {count}\n" + " · ".join(lines)


def status_command(services: Services) -> app_commands.Command:
    """/status: queue, running batch, model, device, speed, this process's shards, uptime."""

    @app_commands.command(name="status", description="How busy the bot is, which model it runs, how fast")
    async def status(interaction: discord.Interaction) -> None:
        s = services.engine.status()
        speed = f"{s.tokens_per_s:.1f} tokens/s" if s.tokens_per_s else "not measured yet"
        embed = discord.Embed(title="continuebot status", colour=discord.Colour.green())
        embed.add_field(name="Queue", value=f"{s.queue_length} waiting")
        embed.add_field(name="Running", value=f"{s.running} in the current batch")
        embed.add_field(name="Speed", value=speed)
        embed.add_field(name="Model", value=s.model_name, inline=False)
        embed.add_field(name="Device", value=f"{s.device} ({s.dtype})")
        if services.inference_health is not None:
            embed.add_field(name="Inference server", value=services.inference_health[:1000], inline=False)
        embed.add_field(name="Shards", value=shards_text(interaction.client, interaction.guild_id)[:1000],
                        inline=False)
        embed.add_field(name="Uptime", value=_uptime(time.time() - s.started_at))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    return status


def forget_me_command(services: Services) -> app_commands.Command:
    """/forget-me: delete everything logged about the caller, after a confirmation."""

    @app_commands.command(name="forget-me", description="Delete everything this bot has logged about you")
    async def forget_me(interaction: discord.Interaction) -> None:
        view = OwnedConfirm(
            interaction.user.id, "Delete everything", timeout=services.view_timeouts.confirm_s,
            expired_text="This confirmation has expired and nothing was deleted. Run /forget-me again to delete your data.",
        )
        await interaction.response.send_message(
            "This deletes every request you made and every output you got from this bot, in every server, "
            "plus your reports and bans' records. It cannot be undone.",
            view=view,
            ephemeral=True,
        )
        view.message = await interaction.original_response()
        await view.wait()
        clicked = view.interaction
        if not view.confirmed or clicked is None:
            if clicked is not None:
                await clicked.response.edit_message(content="Nothing was deleted.", view=None)
            return
        await clicked.response.edit_message(content="Deleting…", view=None)
        removed = await services.store.forget_user(interaction.user.id)
        await services.store.audit(None, "forget-me", detail={"requests": removed}, guild_id=interaction.guild_id)
        log.info("forget-me: removed %d requests of a user", removed)
        await clicked.edit_original_response(content=f"Done: {removed} request{'s' if removed != 1 else ''} deleted.")

    return forget_me
