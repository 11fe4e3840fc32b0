"""Message storage with Discord's limits, attachments, edit history and mention (ping) resolution."""

from __future__ import annotations

import re
from typing import Any, Callable

from . import ids
from .errors import ApiError, invalid_form
from .records import Attachment, Message, MessageVersion, UploadedFile
from .world import World, iso_now

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_FILES = 10
FLAG_COMPONENTS_V2 = 1 << 15
USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")
EVERYONE_MENTION = re.compile(r"@(everyone|here)\b")
MESSAGE_FIELDS = ("content", "embeds", "components", "flags")


def _embed_length(embed: dict[str, Any]) -> int:
    parts = [embed.get("title"), embed.get("description"), (embed.get("footer") or {}).get("text"),
             (embed.get("author") or {}).get("name")]
    parts += [f.get("name") for f in embed.get("fields") or []] + [f.get("value") for f in embed.get("fields") or []]
    return sum(len(p or "") for p in parts)


def validate_embeds(embeds: list[dict[str, Any]]) -> None:
    if len(embeds) > MAX_EMBEDS:
        raise invalid_form("embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
    for index, embed in enumerate(embeds):
        if len(embed.get("description") or "") > 4096:
            raise invalid_form(f"embeds.{index}.description", "BASE_TYPE_MAX_LENGTH",
                               "Must be 4096 or fewer in length.")
        if len(embed.get("title") or "") > 256:
            raise invalid_form(f"embeds.{index}.title", "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")
        if len(embed.get("fields") or []) > 25:
            raise invalid_form(f"embeds.{index}.fields", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    if sum(_embed_length(e) for e in embeds) > MAX_EMBED_TOTAL:
        raise invalid_form("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def validate_components(components: list[dict[str, Any]], flags: int) -> None:
    if not flags & FLAG_COMPONENTS_V2 and len(components) > 5:
        raise invalid_form("components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    stack = list(components)
    while stack:
        component = stack.pop()
        children = component.get("components") or []
        if component.get("type") == 1 and len(children) > 5:
            raise invalid_form("components.components", "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
        if len(component.get("label") or "") > 80:
            raise invalid_form("components.label", "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length.")
        custom_id = component.get("custom_id")
        if custom_id is not None:
            if not 1 <= len(custom_id) <= 100:
                raise invalid_form("components.custom_id", "BASE_TYPE_BAD_LENGTH",
                                   "Must be between 1 and 100 in length.")
            if custom_id in seen:
                raise invalid_form("components", "COMPONENT_CUSTOM_ID_DUPLICATED",
                                   "Component custom id cannot be duplicated")
            seen.add(custom_id)
        if component.get("type") == 2 and component.get("style") != 5 and not custom_id and not component.get("sku_id"):
            raise invalid_form("components.custom_id", "BASE_TYPE_REQUIRED", "This field is required")
        stack.extend(children)
        if component.get("accessory"):
            stack.append(component["accessory"])


def validate_message(body: dict[str, Any], files: list[UploadedFile], size_limit: int) -> None:
    """Raises ApiError for what Discord would refuse: too long, too many, too big."""
    content = body.get("content")
    if content is not None and len(content) > MAX_CONTENT:
        raise invalid_form("content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length.")
    validate_embeds(body.get("embeds") or [])
    validate_components(body.get("components") or [], int(body.get("flags") or 0))
    if len(files) > MAX_FILES:
        raise invalid_form("files", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_FILES} or fewer in length.")
    if any(len(f.data) > size_limit for f in files):
        raise ApiError(413, 40005, "Request entity too large")


def resolve_pings(content: str, allowed: dict[str, Any] | None) -> set[str]:
    """Who a message with this content notifies, under Discord's allowed_mentions rules.

    Without allowed_mentions Discord parses everything. Role pings are counted whatever the
    role's mentionable setting, and @everyone whatever the bot's permissions: stricter than Discord.
    """
    parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse") or [])
    users = {str(u) for u in (allowed or {}).get("users") or []}
    roles = {str(r) for r in (allowed or {}).get("roles") or []}
    pings: set[str] = set()
    for user_id in USER_MENTION.findall(content):
        if "users" in parse or user_id in users:
            pings.add(f"user:{user_id}")
    for role_id in ROLE_MENTION.findall(content):
        if "roles" in parse or role_id in roles:
            pings.add(f"role:{role_id}")
    if EVERYONE_MENTION.search(content) and "everyone" in parse:
        pings.add("everyone")
    return pings


class MessageStore:
    """Every message the bot created, by id, with Discord's create/edit semantics."""

    def __init__(self, world: World, clock: Callable[[], float], url_base: Callable[[], str]) -> None:
        self.world = world
        self.messages: dict[int, Message] = {}
        self._clock = clock
        self._url_base = url_base

    def get(self, message_id: int) -> Message | None:
        message = self.messages.get(message_id)
        return None if message is None or message.deleted else message

    def create(self, channel_id: int, guild_id: int | None, body: dict[str, Any], files: list[UploadedFile], *,
               size_limit: int = 10 * 1024 * 1024, loading: bool = False, extra: dict[str, Any] | None = None,
               interaction_id: int | None = None) -> Message:
        validate_message(body, files, size_limit)
        attachments = self._new_attachments(body.get("attachments"), files, [])
        if not loading and not (body.get("content") or body.get("embeds") or body.get("components")
                                or attachments or body.get("poll") or body.get("sticker_ids")):
            raise ApiError(400, 50006, "Cannot send an empty message")
        flags = int(body.get("flags") or 0) | (ids.FLAG_LOADING if loading else 0)
        message = Message(self.world.snowflakes.next(), channel_id, guild_id, {}, attachments,
                          interaction_id=interaction_id)
        message.payload = {
            "id": str(message.id), "channel_id": str(channel_id), "type": 0,
            "author": self.world.user_payload(self.world.bot.id), "content": body.get("content") or "",
            "embeds": [], "components": body.get("components") or [], "attachments": [],
            "timestamp": iso_now(), "edited_timestamp": None, "tts": bool(body.get("tts")), "pinned": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "flags": flags,
            **(extra or {}),
        }
        message.payload["embeds"] = [{"type": "rich", **e} for e in body.get("embeds") or []]
        self._render(message, body.get("allowed_mentions"), notify=not loading)
        self.messages[message.id] = message
        return message

    def edit(self, message: Message, body: dict[str, Any], files: list[UploadedFile], *,
             size_limit: int = 10 * 1024 * 1024) -> Message:
        """Discord's PATCH: given fields replace, absent fields stay; the first edit ends "thinking"."""
        validate_message(body, files, size_limit)
        was_loading = message.loading
        payload = message.payload
        if "content" in body:
            payload["content"] = body["content"] or ""
        if "embeds" in body:
            payload["embeds"] = [{"type": "rich", **e} for e in body["embeds"] or []]
        if "components" in body:
            payload["components"] = body["components"] or []
        if "attachments" in body or files:
            message.attachments = self._new_attachments(body.get("attachments"), files, message.attachments)
        flags = payload["flags"] & ~ids.FLAG_LOADING
        if body.get("flags") is not None:  # ephemeral is fixed at creation
            flags = (flags & ids.FLAG_EPHEMERAL) | (int(body["flags"]) & ~(ids.FLAG_LOADING | ids.FLAG_EPHEMERAL))
        payload["flags"] = flags
        if not was_loading:
            payload["edited_timestamp"] = iso_now()
        self._render(message, body.get("allowed_mentions"), notify=was_loading)
        return message

    def _new_attachments(self, wanted: list[dict[str, Any]] | None, files: list[UploadedFile],
                         current: list[Attachment]) -> list[Attachment]:
        """Keeps the existing attachments listed by id, adds uploaded files (files[N] matches id N)."""
        uploads = {self._file_index(f, i): f for i, f in enumerate(files)}
        if wanted is None:
            return current + [self._attachment(f, None) for f in uploads.values()]
        existing = {a.id: a for a in current}
        result: list[Attachment] = []
        for entry in wanted:
            key = int(entry["id"]) if entry.get("id") is not None else None
            if key in existing:
                result.append(existing[key])
            elif key in uploads:
                result.append(self._attachment(uploads.pop(key), entry))
        return result + [self._attachment(f, None) for f in uploads.values()]

    @staticmethod
    def _file_index(upload: UploadedFile, position: int) -> int:
        match = re.fullmatch(r"files\[(\d+)\]", upload.field_name)
        return int(match.group(1)) if match else position

    def _attachment(self, upload: UploadedFile, entry: dict[str, Any] | None) -> Attachment:
        filename = (entry or {}).get("filename") or upload.filename
        return Attachment(self.world.snowflakes.next(), filename, upload.data, upload.content_type,
                          (entry or {}).get("description"))

    def _render(self, message: Message, allowed: dict[str, Any] | None, *, notify: bool) -> None:
        payload = message.payload
        pings = resolve_pings(payload["content"], allowed)
        payload["mention_everyone"] = "everyone" in pings
        payload["mentions"] = [self.world.users[int(p[5:])].payload() for p in sorted(pings)
                               if p.startswith("user:") and int(p[5:]) in self.world.users]
        payload["mention_roles"] = [p[5:] for p in sorted(pings) if p.startswith("role:")]
        payload["attachments"] = [a.payload(self._url_base(), message.channel_id) for a in message.attachments]
        if notify:
            message.pings |= pings
        message.history.append(MessageVersion(
            self._clock(), payload["content"], list(payload["embeds"]), list(payload["components"]),
            payload["flags"], [a.filename for a in message.attachments]))
