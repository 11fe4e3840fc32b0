"""Ephemeral pages with Previous/Next buttons over keyset-paginated store queries."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord

from bot.discord_app.boundary import answer_error
from bot.discord_app.delivery import send_ephemeral

log = logging.getLogger(__name__)

Fetch = Callable[[int | None, int], Awaitable[Sequence[Any]]]  # (before_id, limit) -> rows, newest first
Render = Callable[[Sequence[Any]], discord.Embed]


class OwnedView(discord.ui.View):
    """A view only the member who opened it may use; errors get a human reply.

    When it times out, its message is edited: every button disabled and ``expired_text`` shown,
    so nobody clicks a button that no longer answers (set ``message`` once it is sent).
    """

    def __init__(self, owner_id: int, *, timeout: float, expired_text: str) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.expired_text = expired_text
        self.message: discord.InteractionMessage | discord.WebhookMessage | None = None

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        if self.message is None:
            return
        try:
            await self.message.edit(content=self.expired_text, view=self)
        except discord.HTTPException as exc:  # the message is gone or its token expired: nothing to fix
            log.info("could not mark an expired %s: %s", type(self).__name__, exc)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await send_ephemeral(interaction, "These buttons belong to someone else's view.")
            return False
        return True

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]) -> None:
        await answer_error(interaction, error)


class Pager(OwnedView):
    """Shows ``page_size`` rows at a time; rows must have an ``id`` (the keyset cursor)."""

    def __init__(
        self, owner_id: int, fetch: Fetch, render: Render, *, again: str, timeout: float, page_size: int = 10
    ) -> None:
        super().__init__(
            owner_id, timeout=timeout, expired_text=f"These pages have expired; run {again} again to browse."
        )
        self.fetch = fetch
        self.render = render
        self.page_size = page_size
        self.cursors: list[int | None] = [None]  # before_id of each page seen
        self.rows: Sequence[Any] = ()
        self.has_next = False

    async def load(self) -> discord.Embed:
        """Fetch the current page (one extra row tells whether a next page exists)."""
        rows = await self.fetch(self.cursors[-1], self.page_size + 1)
        self.has_next = len(rows) > self.page_size
        self.rows = rows[: self.page_size]
        self.previous.disabled = len(self.cursors) == 1
        self.next.disabled = not self.has_next
        embed = self.render(self.rows)
        embed.set_footer(text=f"Page {len(self.cursors)}")
        return embed

    async def show(self, interaction: discord.Interaction) -> None:
        """Send the first page as an ephemeral reply."""
        embed = await self.load()
        self.message = await interaction.followup.send(embed=embed, view=self, ephemeral=True, wait=True)

    async def show_page(self, interaction: discord.Interaction) -> None:
        """Reload the current page into the message that was clicked."""
        embed = await self.load()
        await interaction.response.edit_message(embed=embed, view=self)

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        if len(self.cursors) > 1:
            self.cursors.pop()
        await self.show_page(interaction)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        if self.has_next and self.rows:
            self.cursors.append(self.rows[-1].id)
        await self.show_page(interaction)
