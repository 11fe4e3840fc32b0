"""A protocol-level fake Discord (REST + gateway websocket) for running the real discord.py client in tests."""

from . import ids
from .errors import ApiError, FakeDiscordError, UsageError, WaitTimeout
from .gateway import GatewayEvent
from .records import Attachment, Call, Callback, FakeInteraction, Message, MessageVersion, UploadedFile
from .server import FakeDiscord
from .world import Channel, Guild, Member, Role, User, World, default_world

__all__ = [
    "ApiError", "Attachment", "Call", "Callback", "Channel", "FakeDiscord", "FakeDiscordError", "FakeInteraction",
    "GatewayEvent", "Guild", "Member", "Message", "MessageVersion", "Role", "UploadedFile", "UsageError", "User",
    "WaitTimeout", "World", "default_world", "ids",
]
