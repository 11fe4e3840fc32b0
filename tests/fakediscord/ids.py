"""Fixed ids, permission bits and the bot token of the fake Discord's default world."""

from __future__ import annotations

# A token shaped like a real one (base64 user id . timestamp . hmac), valid only for the fake.
FAKE_TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GfAkE0.fake-token-for-tests-only_0123456789abc"

APPLICATION_ID = 1100000000000000001
BOT_ID = APPLICATION_ID  # as for every modern Discord app: bot user id == application id

GUILD_ID = 1100000000000000100
EVERYONE_ROLE_ID = GUILD_ID  # Discord's @everyone role has the guild's id
CHANNEL_ID = 1100000000000000200  # "general"
OTHER_CHANNEL_ID = 1100000000000000201  # "off-topic"

MOD_ROLE_ID = 1100000000000000300  # "Moderators": no special permission, meant for MODERATOR_ROLE_IDS
MANAGE_ROLE_ID = 1100000000000000301  # "Janitors": has Manage Messages
BOT_ROLE_ID = 1100000000000000302  # the bot's managed role

MEMBER_ID = 1100000000000000401  # alice: a normal member
MODERATOR_ID = 1100000000000000402  # bob: Manage Messages through the Janitors role
MOD_ROLE_MEMBER_ID = 1100000000000000403  # carol: has the Moderators role
OTHER_MEMBER_ID = 1100000000000000404  # dave: another normal member
OWNER_ID = 1100000000000000405  # olivia: guild owner

# Permission bits (https://discord.com/developers/docs/topics/permissions).
KICK_MEMBERS = 1 << 1
BAN_MEMBERS = 1 << 2
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1

EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL | SEND_MESSAGES | ADD_REACTIONS | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS | USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS
)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS

# Message flags.
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7


def guild_id_on_shard(shard: int, shard_count: int, n: int = 0) -> int:
    """A guild id whose events Discord routes to ``shard`` of ``shard_count``: ``(id >> 22) % count == shard``."""
    return ((1 << 38) * shard_count + n * shard_count + shard) << 22
