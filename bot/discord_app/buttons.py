"""Routes clicks on Cancel / Regenerate / Continue / Report (and the report form) to their actions."""

from __future__ import annotations

import logging
from typing import Any
from dataclasses import fields

import discord

from bot.discord_app import components
from bot.discord_app.access import is_moderator
from bot.discord_app.delivery import send_ephemeral
from bot.discord_app.options import replace_lone_surrogates
from bot.services import Services
from models.types import GenerationParams
from storage.types import RequestRow

log = logging.getLogger(__name__)

_PARAM_NAMES = {f.name for f in fields(GenerationParams)}


def params_from_row(row: RequestRow, *, seed: int | None) -> GenerationParams:
    """The row's settings with a new (or no) seed."""
    known = {k: v for k, v in row.params.items() if k in _PARAM_NAMES}
    return GenerationParams(**{**known, "seed": seed})


class ButtonRouter:
    """Handles component and modal interactions whose custom id starts with ``cb:``."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def dispatch(self, interaction: discord.Interaction) -> bool:
        """Handle ``interaction`` if it is ours; False when it is not."""
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        action = components.parse_custom_id(custom_id)
        if action is None:
            if not components.is_ours(custom_id):
                return False
            log.info("interaction %s: a malformed button id (%d characters)", interaction.id, len(custom_id))
            await send_ephemeral(interaction, "That button doesn't work any more. Use the buttons under a newer reply.")
            return True
        handler = getattr(self, f"on_{action.action}")
        await handler(interaction, action)
        return True

    async def _row_here(self, interaction: discord.Interaction, request_id: int) -> RequestRow | None:
        row = await self.services.store.get(request_id)
        if row is None or row.guild_id != interaction.guild_id:
            await send_ephemeral(interaction, "That request no longer exists (it may have been deleted).")
            return None
        return row

    async def on_cancel(self, interaction: discord.Interaction, action: components.ButtonAction) -> None:
        job = self.services.jobs.jobs.get(action.request_id)
        if job is None:
            await send_ephemeral(interaction, "That request has already finished.")
            return
        if interaction.user.id != job.user_id and not is_moderator(self.services.rules, interaction):
            await send_ephemeral(interaction, "Only the person who asked (or a moderator) can cancel this.")
            return
        await interaction.response.defer()
        self.services.jobs.cancel(action.request_id, by=interaction.user.display_name)

    async def on_regen(self, interaction: discord.Interaction, action: components.ButtonAction) -> None:
        row = await self._row_here(interaction, action.request_id)
        if row is None:
            return
        await self.services.jobs.start(interaction, row.prompt, params_from_row(row, seed=None), parent_id=row.id)

    async def on_cont(self, interaction: discord.Interaction, action: components.ButtonAction) -> None:
        row = await self._row_here(interaction, action.request_id)
        if row is None:
            return
        if row.status != "done" or action.variant >= len(row.outputs):
            await send_ephemeral(interaction, "Only a finished request can be continued.")
            return
        prompt = row.prompt + row.outputs[action.variant]
        limit = self.services.settings.max_prompt_chars
        prompt = prompt[-limit:]  # the model only needs the end; documented in the README
        await self.services.jobs.start(interaction, prompt, params_from_row(row, seed=None), parent_id=row.id)

    async def on_report(self, interaction: discord.Interaction, action: components.ButtonAction) -> None:
        row = await self._row_here(interaction, action.request_id)
        if row is None:
            return
        await interaction.response.send_modal(components.report_modal(row.id))

    async def on_reportform(self, interaction: discord.Interaction, action: components.ButtonAction) -> None:
        row = await self._row_here(interaction, action.request_id)
        if row is None:
            return
        reason = _modal_value(interaction, "reason").strip() or "(no reason given)"
        report_id = await self.services.store.add_report(row.id, interaction.user.id, reason, interaction.guild_id)
        log.info("report %s on request %s by user %s", report_id, row.id, interaction.user.id)
        await send_ephemeral(interaction, f"Thanks — the moderators will review request #{row.id}.")


def _modal_value(interaction: discord.Interaction, custom_id: str) -> str:
    """The value of a text input in a submitted modal (found at any depth of the payload)."""
    data: dict[str, Any] = dict(interaction.data or {})
    stack: list[Any] = list(data.get("components", []))
    while stack:
        item = stack.pop()
        if item.get("custom_id") == custom_id and "value" in item:
            return replace_lone_surrogates(str(item["value"]))
        stack.extend(item.get("components", []))
        if "component" in item:
            stack.append(item["component"])
    return ""
