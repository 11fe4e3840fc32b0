"""The fake Discord's world: users, guilds, channels, roles, members, and their API payloads."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from . import ids
from .errors import UsageError

DISCORD_EPOCH_MS = 1420070400000
TEXT_CHANNEL = 0
DM_CHANNEL = 1


def iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


class Snowflakes:
    """Hands out increasing, time-based snowflake ids."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        now = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22)
        self._last = max(now, self._last + 1)
        return self._last


@dataclass
class User:
    id: int
    name: str
    bot: bool = False
    global_name: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "username": self.name, "discriminator": "0", "global_name": self.global_name,
            "avatar": None, "bot": self.bot, "public_flags": 0, "flags": 0, "banner": None, "accent_color": None,
            "avatar_decoration_data": None, "collectibles": None, "primary_guild": None,
        }


@dataclass
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 1
    managed: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "name": self.name, "permissions": str(self.permissions), "position": self.position,
            "color": 0, "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False, "icon": None, "unicode_emoji": None, "managed": self.managed, "mentionable": False,
            "flags": 0,
        }


@dataclass
class Channel:
    id: int
    name: str
    guild_id: int | None
    type: int = TEXT_CHANNEL
    position: int = 0
    topic: str | None = None
    overwrites: list[dict[str, Any]] = field(default_factory=list)
    recipient_id: int | None = None  # DMs only


@dataclass
class Member:
    user_id: int
    guild_id: int
    roles: list[int]
    permissions: int | None = None  # explicit override of the computed permissions
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)


@dataclass
class Guild:
    id: int
    name: str
    owner_id: int
    channels: dict[int, Channel] = field(default_factory=dict)
    roles: dict[int, Role] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)


class World:
    """Registry of everything the fake knows, and the JSON Discord sends for each thing."""

    def __init__(self, bot: User, application_id: int) -> None:
        self.bot = bot
        self.application_id = application_id
        self.snowflakes = Snowflakes()
        self.users: dict[int, User] = {bot.id: bot}
        self.guilds: dict[int, Guild] = {}
        self.dm_channels: dict[int, Channel] = {}  # by recipient user id
        self._positions = itertools.count(1)

    # ---- building ----
    def add_user(self, user_id: int | None, name: str, *, bot: bool = False) -> User:
        user = User(user_id or self.snowflakes.next(), name, bot=bot, global_name=name.title())
        self.users[user.id] = user
        return user

    def add_guild(self, guild_id: int | None = None, name: str = "Fake Guild", *, owner_id: int = ids.OWNER_ID,
                  everyone_permissions: int = ids.EVERYONE_PERMISSIONS,
                  bot_permissions: int = ids.BOT_PERMISSIONS, bot_role_id: int | None = None) -> Guild:
        """A guild with its @everyone role and the bot as a member (with a managed role)."""
        guild = Guild(guild_id or self.snowflakes.next(), name, owner_id)
        self.guilds[guild.id] = guild
        guild.roles[guild.id] = Role(guild.id, guild.id, "@everyone", everyone_permissions, position=0)
        bot_role = self.add_role(guild.id, self.bot.name, bot_permissions, role_id=bot_role_id,
                                 managed=True)
        self.add_member(guild.id, self.bot.id, self.bot.name, roles=[bot_role.id])
        return guild

    def add_channel(self, guild_id: int, name: str, *, channel_id: int | None = None,
                    overwrites: list[dict[str, Any]] | None = None, topic: str | None = None) -> Channel:
        guild = self.guild(guild_id)
        channel = Channel(channel_id or self.snowflakes.next(), name, guild.id, position=len(guild.channels),
                          topic=topic, overwrites=list(overwrites or []))
        guild.channels[channel.id] = channel
        return channel

    def add_role(self, guild_id: int, name: str, permissions: int = 0, *, role_id: int | None = None,
                 managed: bool = False) -> Role:
        guild = self.guild(guild_id)
        role = Role(role_id or self.snowflakes.next(), guild.id, name, permissions, position=next(self._positions),
                    managed=managed)
        guild.roles[role.id] = role
        return role

    def add_member(self, guild_id: int, user_id: int | None, name: str, roles: list[int] | None = None,
                   permissions: int | None = None, *, bot: bool = False) -> Member:
        """Adds the user (created if new) to the guild; `permissions` overrides the computed ones."""
        guild = self.guild(guild_id)
        user = self.users.get(user_id) if user_id else None
        if user is None:
            user = self.add_user(user_id, name, bot=bot)
        for role_id in roles or []:
            if role_id not in guild.roles:
                raise UsageError(f"role {role_id} is not in guild {guild.id}")
        member = Member(user.id, guild.id, list(roles or []), permissions)
        guild.members[user.id] = member
        return member

    def dm_channel(self, user_id: int) -> Channel:
        """The DM channel between the bot and a user (created on first use)."""
        self.user(user_id)
        if user_id not in self.dm_channels:
            self.dm_channels[user_id] = Channel(self.snowflakes.next(), "", None, type=DM_CHANNEL,
                                                recipient_id=user_id)
        return self.dm_channels[user_id]

    # ---- lookups ----
    def user(self, user_id: int) -> User:
        try:
            return self.users[int(user_id)]
        except KeyError:
            raise UsageError(f"unknown user {user_id}; add it with add_member or add_user") from None

    def guild(self, guild_id: int) -> Guild:
        try:
            return self.guilds[int(guild_id)]
        except KeyError:
            raise UsageError(f"unknown guild {guild_id}") from None

    def find_channel(self, channel_id: int) -> Channel | None:
        for guild in self.guilds.values():
            if channel_id in guild.channels:
                return guild.channels[channel_id]
        return next((c for c in self.dm_channels.values() if c.id == channel_id), None)

    def channel(self, channel_id: int) -> Channel:
        channel = self.find_channel(int(channel_id))
        if channel is None:
            raise UsageError(f"unknown channel {channel_id}")
        return channel

    def member(self, guild_id: int, user_id: int) -> Member | None:
        return self.guild(guild_id).members.get(int(user_id))

    # ---- permissions ----
    def permissions(self, guild_id: int, user_id: int, channel_id: int | None = None) -> int:
        """Discord's permission computation: base from roles, then channel overwrites."""
        guild = self.guild(guild_id)
        member = guild.members.get(user_id)
        if member is None:
            return 0
        if member.permissions is not None:
            return member.permissions
        if user_id == guild.owner_id:
            return ids.ALL_PERMISSIONS
        base = guild.roles[guild.id].permissions
        for role_id in member.roles:
            base |= guild.roles[role_id].permissions
        if base & ids.ADMINISTRATOR:
            return ids.ALL_PERMISSIONS
        channel = guild.channels.get(channel_id) if channel_id else None
        return self._apply_overwrites(base, channel, member) if channel else base

    @staticmethod
    def _apply_overwrites(base: int, channel: Channel, member: Member) -> int:
        by_id = {int(o["id"]): o for o in channel.overwrites}
        everyone = by_id.get(channel.guild_id or 0)
        if everyone:
            base = (base & ~int(everyone.get("deny", 0))) | int(everyone.get("allow", 0))
        allow = deny = 0
        for role_id in member.roles:
            if role_id in by_id:
                allow |= int(by_id[role_id].get("allow", 0))
                deny |= int(by_id[role_id].get("deny", 0))
        base = (base & ~deny) | allow
        own = by_id.get(member.user_id)
        if own:
            base = (base & ~int(own.get("deny", 0))) | int(own.get("allow", 0))
        return base

    # ---- payloads ----
    def user_payload(self, user_id: int) -> dict[str, Any]:
        return self.user(user_id).payload()

    def member_payload(self, guild_id: int, user_id: int, *, with_user: bool = True,
                       channel_id: int | None = None) -> dict[str, Any]:
        member = self.member(guild_id, user_id)
        if member is None:
            raise UsageError(f"user {user_id} is not a member of guild {guild_id}")
        payload: dict[str, Any] = {
            "roles": [str(r) for r in member.roles], "nick": member.nick, "avatar": None, "banner": None,
            "joined_at": member.joined_at, "premium_since": None, "deaf": False, "mute": False, "flags": 0,
            "pending": False, "communication_disabled_until": None,
        }
        if with_user:
            payload["user"] = self.user_payload(user_id)
        if channel_id is not None:
            payload["permissions"] = str(self.permissions(guild_id, user_id, channel_id))
        return payload

    def channel_payload(self, channel: Channel, *, for_user: int | None = None) -> dict[str, Any]:
        if channel.type == DM_CHANNEL:
            assert channel.recipient_id is not None
            return {"id": str(channel.id), "type": DM_CHANNEL, "last_message_id": None, "flags": 0,
                    "recipients": [self.user_payload(channel.recipient_id)]}
        payload: dict[str, Any] = {
            "id": str(channel.id), "type": channel.type, "guild_id": str(channel.guild_id), "name": channel.name,
            "position": channel.position, "permission_overwrites": channel.overwrites, "nsfw": False,
            "parent_id": None, "topic": channel.topic, "last_message_id": None, "rate_limit_per_user": 0,
            "flags": 0,
        }
        if for_user is not None and channel.guild_id is not None:
            payload["permissions"] = str(self.permissions(channel.guild_id, for_user, channel.id))
        return payload

    def guild_payload(self, guild: Guild) -> dict[str, Any]:
        return {
            "id": str(guild.id), "name": guild.name, "icon": None, "splash": None, "discovery_splash": None,
            "banner": None, "owner_id": str(guild.owner_id), "afk_channel_id": None, "afk_timeout": 300,
            "verification_level": 0, "default_message_notifications": 1, "explicit_content_filter": 0,
            "roles": [r.payload() for r in guild.roles.values()], "emojis": [], "stickers": [], "features": [],
            "mfa_level": 0, "application_id": None, "system_channel_id": None, "system_channel_flags": 0,
            "rules_channel_id": None, "vanity_url_code": None, "description": None, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US", "public_updates_channel_id": None,
            "nsfw_level": 0, "premium_progress_bar_enabled": False, "safety_alerts_channel_id": None,
        }

    def guild_create_payload(self, guild: Guild) -> dict[str, Any]:
        payload = self.guild_payload(guild)
        payload.update(
            unavailable=False, large=False, member_count=len(guild.members), joined_at=iso_now(),
            channels=[self.channel_payload(c) for c in guild.channels.values()],
            # as Discord without the presences intent: only the bot; clients chunk (op 8) for the rest
            members=[self.member_payload(guild.id, self.bot.id)],
            threads=[], presences=[], voice_states=[], stage_instances=[], guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return payload


def default_world() -> World:
    """One guild, two text channels, a member, a moderator (Manage Messages), a mod-role member, the owner."""
    world = World(User(ids.BOT_ID, "continuebot", bot=True, global_name=None), ids.APPLICATION_ID)
    for user_id, name in [(ids.MEMBER_ID, "alice"), (ids.MODERATOR_ID, "bob"), (ids.MOD_ROLE_MEMBER_ID, "carol"),
                          (ids.OTHER_MEMBER_ID, "dave"), (ids.OWNER_ID, "olivia")]:
        world.add_user(user_id, name)
    guild = world.add_guild(ids.GUILD_ID, "Fake Guild", owner_id=ids.OWNER_ID, bot_role_id=ids.BOT_ROLE_ID)
    world.add_channel(guild.id, "general", channel_id=ids.CHANNEL_ID)
    world.add_channel(guild.id, "off-topic", channel_id=ids.OTHER_CHANNEL_ID)
    world.add_role(guild.id, "Moderators", 0, role_id=ids.MOD_ROLE_ID)
    world.add_role(guild.id, "Janitors", ids.MANAGE_MESSAGES, role_id=ids.MANAGE_ROLE_ID)
    world.add_member(guild.id, ids.MEMBER_ID, "alice")
    world.add_member(guild.id, ids.MODERATOR_ID, "bob", roles=[ids.MANAGE_ROLE_ID])
    world.add_member(guild.id, ids.MOD_ROLE_MEMBER_ID, "carol", roles=[ids.MOD_ROLE_ID])
    world.add_member(guild.id, ids.OTHER_MEMBER_ID, "dave")
    world.add_member(guild.id, ids.OWNER_ID, "olivia")
    return world
