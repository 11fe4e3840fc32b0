"""The Discord permissions and OAuth2 scopes the bot needs: one list for the invite and the code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # discord.py takes a while to import; `continuebot invite --help` should not wait
    import discord

OAUTH_SCOPES: tuple[str, ...] = ("bot", "applications.commands")

# (permission flag, why the bot needs it). Replies go through interaction responses and
# followups, which need no channel permission except the ones Discord checks against
# ``app_permissions`` (attach_files, embed_links); the rest serve the channel-message fallback
# used when an interaction token has expired (tokens live 15 minutes). That fallback posts a
# plain message; replying to another message (``reference=``) would also need read_message_history.
REQUIRED_FLAGS: tuple[tuple[str, str], ...] = (
    ("view_channel", "see the channel to post a result whose interaction token expired"),
    ("send_messages", "post a result whose interaction token expired"),
    ("send_messages_in_threads", "the same, when /continue was used in a thread"),
    ("embed_links", "embeds in /status and /mod views"),
    ("attach_files", "the CSV or JSONL file of /mod export"),
)


def required_permissions() -> discord.Permissions:
    """A fresh ``discord.Permissions`` with exactly the flags the bot uses."""
    import discord

    return discord.Permissions(**{name: True for name, _ in REQUIRED_FLAGS})


def missing_permissions(granted: discord.Permissions) -> tuple[str, ...]:
    """Names of the required flags ``granted`` lacks (e.g. an interaction's ``app_permissions``)."""
    return tuple(name for name, _ in REQUIRED_FLAGS if not getattr(granted, name))
