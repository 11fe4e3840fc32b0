"""The one error boundary of every command, button and form: a clear ephemeral reply, unknown errors logged once."""

from __future__ import annotations

import logging
import traceback
from typing import Any

import discord
from discord import app_commands

from bot.discord_app.delivery import send_ephemeral
from bot.errors import AccessDenied
from models.errors import InvalidRequest
from storage.errors import StorageError, UnstorableValue

log = logging.getLogger(__name__)

OOPS = "Something went wrong on my side. The owner can find the details in the bot's log."
STALE_COMMAND = (
    "This command has changed since Discord last showed it to you. Please try again in a minute, once "
    "Discord has refreshed its command list (reopening Discord refreshes it at once)."
)
UNSTORABLE = "I can't keep that value: a number is too large, or the text holds something that isn't a character."
STORE_DOWN = "I can't reach my database right now. Please try again in a minute."
ALREADY_ANSWERED = 40060  # the same interaction delivered twice: the first delivery answered it
UNKNOWN_INTERACTION = 10062  # the interaction expired before the answer arrived


def known_reply(error: BaseException) -> str | None:
    """The member's reply for a failure we expect, or None for one we do not."""
    if isinstance(error, AccessDenied):
        return error.reason
    if isinstance(error, (app_commands.CommandNotFound, app_commands.CommandSignatureMismatch)):
        return STALE_COMMAND
    if isinstance(error, app_commands.CheckFailure):
        return str(error) or "You can't use this command here."
    if isinstance(error, app_commands.TransformerError):
        return f"I couldn't understand that value: {error.value}."
    if isinstance(error, InvalidRequest):
        return f"That request isn't valid: {error.field} {error.message}."
    if isinstance(error, UnstorableValue):
        return UNSTORABLE
    return None


async def answer_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Answer a failed interaction once, ephemerally; log what we did not expect once, without the token."""
    original = getattr(error, "original", None) or error
    if isinstance(original, discord.HTTPException) and original.code == ALREADY_ANSWERED:
        log.info("interaction %s was delivered twice; the first delivery answered it", interaction.id)
        return
    if isinstance(original, discord.HTTPException) and original.code == UNKNOWN_INTERACTION:
        log.warning("interaction %s expired before I could answer it (Unknown interaction)", interaction.id)
        return
    reply = known_reply(original)
    if reply is None and isinstance(original, StorageError):
        log.warning("interaction %s (%s): storage failed: %s", interaction.id, _what(interaction), original)
        reply = STORE_DOWN
    if reply is None:
        log.error("interaction %s (%s) failed:\n%s", interaction.id, _what(interaction), _traceback(interaction, original))
        reply = OOPS
    await send_ephemeral(interaction, reply)


def _what(interaction: discord.Interaction) -> str:
    """The command or the component's custom id, for the log line."""
    if interaction.command is not None:
        return f"/{interaction.command.qualified_name}"
    data: dict[str, Any] = dict(interaction.data or {})
    return f"custom id {str(data.get('custom_id', '?'))[:100]!r}" if "custom_id" in data else f"/{data.get('name', '?')}"


def _traceback(interaction: discord.Interaction, error: BaseException) -> str:
    """The formatted traceback with the interaction token blanked out (URLs in messages may carry it)."""
    text = "".join(traceback.format_exception(error)).rstrip()
    return text.replace(interaction.token, "[redacted]") if interaction.token else text
