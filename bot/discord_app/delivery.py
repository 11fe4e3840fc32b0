"""Showing one request's reply: throttled edits of the interaction response, follow-ups, channel fallback."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import discord


log = logging.getLogger(__name__)

# Discord error codes meaning the interaction token can no longer be used.
TOKEN_GONE_CODES = {10062, 10015, 10008, 50027}
TOKEN_LIFETIME = timedelta(minutes=15)
TOKEN_MARGIN = timedelta(seconds=30)


def token_gone(exc: discord.HTTPException) -> bool:
    """True when Discord says the interaction or its webhook token is unknown or expired."""
    return exc.code in TOKEN_GONE_CODES or exc.status == 401


class Delivery:
    """Renders one request into its interaction's messages, at most one edit per ``interval_s``.

    When the interaction token is gone (expired after 15 minutes, or Discord answered 10062 /
    Invalid Webhook Token), the final result goes to the channel as a normal message instead.
    """

    def __init__(
        self,
        interaction: discord.Interaction,
        *,
        interval_s: float = 1.0,
        token_lifetime: timedelta = TOKEN_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interaction = interaction
        self.interval_s = interval_s
        self.clock = clock
        self.expires_at = interaction.created_at + token_lifetime - TOKEN_MARGIN
        self.token_ok = True
        self.last_edit = float("-inf")
        # What to show next, built only when an edit is sent (most updates are throttled away).
        self.pending: Callable[[], tuple[str, discord.ui.View | None]] | None = None

    def token_usable(self) -> bool:
        return self.token_ok and discord.utils.utcnow() < self.expires_at

    def due(self) -> bool:
        return self.clock() - self.last_edit >= self.interval_s

    def wait_s(self) -> float | None:
        """Seconds until kept content may be sent; None when nothing is kept."""
        if self.pending is None or not self.token_usable():
            return None
        return max(0.0, self.last_edit + self.interval_s - self.clock())

    async def show(self, build: Callable[[], tuple[str, discord.ui.View | None]], *, now: bool = False) -> None:
        """Show what ``build()`` gives, now if the throttle allows (or ``now``), else keep it for ``flush``."""
        self.pending = build
        if now or self.due():
            await self.flush()

    async def flush(self) -> None:
        """Send the kept content, if any and if the token still works."""
        if self.pending is None or not self.token_usable():
            return
        content, view = self.pending()
        self.pending = None
        self.last_edit = self.clock()
        await self._edit(content, view)

    async def _edit(self, content: str, view: discord.ui.View | None) -> bool:
        try:
            await self.interaction.edit_original_response(content=content, view=view)
            return True
        except discord.HTTPException as exc:
            if token_gone(exc):
                log.warning("interaction %s: token no longer usable (%s)", self.interaction.id, exc.code)
                self.token_ok = False
                return False
            raise

    async def final(self, chunks: Sequence[str], view: discord.ui.View | None, channel_note: str) -> str:
        """Deliver the final chunks; returns 'interaction', 'channel' or 'lost'."""
        self.pending = None
        if self.token_usable() and await self._final_via_interaction(chunks, view):
            return "interaction"
        if await self._final_via_channel(chunks, view, channel_note):
            return "channel"
        return "lost"

    async def _final_via_interaction(self, chunks: Sequence[str], view: discord.ui.View | None) -> bool:
        first, *rest = chunks
        if not await self._edit(first, view if not rest else None):
            return False
        try:
            for i, chunk in enumerate(rest):
                last = i == len(rest) - 1
                if last and view is not None:
                    await self.interaction.followup.send(chunk, view=view, wait=True)
                else:
                    await self.interaction.followup.send(chunk, wait=True)
        except discord.HTTPException as exc:
            if not token_gone(exc):
                raise
            self.token_ok = False
            return False
        return True

    async def _final_via_channel(
        self, chunks: Sequence[str], view: discord.ui.View | None, note: str
    ) -> bool:
        channel = self.interaction.channel
        if channel is None or not isinstance(channel, discord.abc.Messageable):
            return False
        if self.interaction.guild_id is not None and not self.interaction.app_permissions.send_messages:
            return False
        try:
            messages = [note, *chunks] if note else list(chunks)
            for i, chunk in enumerate(messages):
                last = i == len(messages) - 1
                await channel.send(chunk, view=view if last and view else discord.utils.MISSING)
            return True
        except discord.HTTPException:
            log.warning("interaction %s: channel delivery failed", self.interaction.id, exc_info=True)
            return False


async def send_ephemeral(interaction: discord.Interaction, text: str) -> None:
    """Answer with an ephemeral message, whether or not the interaction was answered before."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("interaction %s: could not send a reply (%s)", interaction.id, exc)


