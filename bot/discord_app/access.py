"""Who may do what: channel/role/DM rules for /continue, moderator checks, per-user cooldowns."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import discord

from bot.errors import AccessDenied


@dataclass(frozen=True)
class AccessRules:
    """The access settings, taken from Settings."""

    allowed_channel_ids: tuple[int, ...] = ()
    allowed_role_ids: tuple[int, ...] = ()
    moderator_role_ids: tuple[int, ...] = ()
    allow_dms: bool = False


def _role_ids(user: discord.abc.User) -> set[int]:
    roles = getattr(user, "roles", None) or ()
    return {role.id for role in roles}


def check_can_generate(rules: AccessRules, interaction: discord.Interaction) -> None:
    """Raise AccessDenied unless the invoking user may use /continue (and its buttons) here."""
    if interaction.guild_id is None:
        if not rules.allow_dms:
            raise AccessDenied("I only work in servers, not in direct messages.")
        return
    channel_id = interaction.channel_id
    parent_id = getattr(interaction.channel, "parent_id", None)  # threads count as their parent channel
    if rules.allowed_channel_ids and not ({channel_id, parent_id} & set(rules.allowed_channel_ids)):
        mentions = ", ".join(f"<#{c}>" for c in rules.allowed_channel_ids)
        raise AccessDenied(f"I can't be used in this channel. Try {mentions}.")
    if rules.allowed_role_ids and not (_role_ids(interaction.user) & set(rules.allowed_role_ids)):
        raise AccessDenied("You need one of the roles this server allows to use me.")


def is_moderator(rules: AccessRules, interaction: discord.Interaction) -> bool:
    """Manage Messages in this channel, or a role listed in MODERATOR_ROLE_IDS, in a guild."""
    if interaction.guild_id is None:
        return False
    if interaction.permissions.manage_messages:
        return True
    return bool(_role_ids(interaction.user) & set(rules.moderator_role_ids))


def check_moderator(rules: AccessRules, interaction: discord.Interaction) -> None:
    """Raise AccessDenied unless the user is a moderator here (checked at every use)."""
    if interaction.guild_id is None:
        raise AccessDenied("Moderator commands only work inside a server.")
    if not is_moderator(rules, interaction):
        raise AccessDenied("Only moderators (Manage Messages, or a moderator role) can use this.")


@dataclass
class Cooldowns:
    """Per-user minimum gap between requests; in memory, reset on restart."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    _last: dict[int, float] = field(default_factory=dict)

    def retry_after(self, user_id: int) -> float:
        """Seconds until this user may ask again (0 when they may now)."""
        if self.seconds <= 0:
            return 0.0
        last = self._last.get(user_id)
        if last is None:
            return 0.0
        return max(0.0, last + self.seconds - self.clock())

    def touch(self, user_id: int) -> None:
        """Record a request by this user now."""
        if self.seconds > 0:
            self._last[user_id] = self.clock()
