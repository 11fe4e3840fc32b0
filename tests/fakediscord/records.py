"""What the fake saw and holds: recorded calls, stored messages with their edit history, interactions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from . import ids
from .waiting import Notifier

MESSAGE_ROUTES = (
    "/channels/{channel_id}/messages",
    "/channels/{channel_id}/messages/{message_id}",
    "/webhooks/{app_id}/{token}",
    "/webhooks/{app_id}/{token}/messages/{message_id}",
)


@dataclass
class UploadedFile:
    """One file part of a multipart request."""

    field_name: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class Call:
    """One REST request the client made, and the fake's answer."""

    method: str
    path: str  # relative to the API base, e.g. "/webhooks/1/tok/messages/@original"
    route: str  # the matched route template, e.g. "/webhooks/{app_id}/{token}/messages/{message_id}"
    query: dict[str, str]
    json: Any  # the JSON body; for multipart, the parsed payload_json
    files: list[UploadedFile]
    headers: dict[str, str]
    at: float  # loop.time() when received
    status: int = 0
    response: Any = None

    @property
    def message_payload(self) -> dict[str, Any] | None:
        """The message body this call creates or edits (None for other calls)."""
        if not isinstance(self.json, dict):
            return None
        if self.route == "/interactions/{interaction_id}/{token}/callback":
            return self.json.get("data") if self.json.get("type") in (4, 7) else None
        if self.method in ("POST", "PATCH") and self.route in MESSAGE_ROUTES:
            return self.json
        return None

    def __repr__(self) -> str:
        return f"<Call {self.method} {self.path} -> {self.status}>"


@dataclass
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self, url_base: str, channel_id: int) -> dict[str, Any]:
        url = f"{url_base}/attachments/{channel_id}/{self.id}/{self.filename}"
        return {"id": str(self.id), "filename": self.filename, "size": self.size, "url": url, "proxy_url": url,
                "content_type": self.content_type, "description": self.description}


@dataclass
class MessageVersion:
    """A message as it looked after its creation or one edit."""

    at: float
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    flags: int
    attachments: list[str]


@dataclass
class Message:
    """A message the bot sent, as Discord holds it (payload) plus what tests want to inspect."""

    id: int
    channel_id: int
    guild_id: int | None
    payload: dict[str, Any]
    attachments: list[Attachment] = field(default_factory=list)
    history: list[MessageVersion] = field(default_factory=list)
    interaction_id: int | None = None
    deleted: bool = False
    pings: set[str] = field(default_factory=set)  # "everyone", "user:<id>", "role:<id>" actually notified

    @property
    def content(self) -> str:
        return self.payload.get("content") or ""

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.payload.get("embeds") or []

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.payload.get("components") or []

    @property
    def flags(self) -> int:
        return int(self.payload.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & ids.FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while a deferred response still shows "Bot is thinking..."."""
        return bool(self.flags & ids.FLAG_LOADING)

    @property
    def edits(self) -> list[MessageVersion]:
        return self.history[1:]

    def iter_components(self) -> Iterator[dict[str, Any]]:
        """Every component (rows, containers and their children), depth first."""
        stack = list(reversed(self.components))
        while stack:
            component = stack.pop()
            yield component
            children = list(component.get("components") or [])
            if component.get("accessory"):
                children.append(component["accessory"])
            stack.extend(reversed(children))

    def find_component(self, custom_id: str | None = None, label: str | None = None) -> dict[str, Any] | None:
        for component in self.iter_components():
            if custom_id is not None and component.get("custom_id") == custom_id:
                return component
            if label is not None and component.get("label") == label:
                return component
        return None

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [c for c in self.iter_components() if c.get("type") == 2]

    def __repr__(self) -> str:
        return f"<Message id={self.id} content={self.content[:40]!r} flags={self.flags}>"


@dataclass
class Callback:
    type: int
    data: dict[str, Any] | None
    at: float


class FakeInteraction:
    """An interaction the fake sent to the bot, and everything the bot answered to it."""

    def __init__(self, *, payload: dict[str, Any], sent_at: float, notifier: Notifier,
                 messages: dict[int, Message], source_message_id: int | None = None) -> None:
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.guild_id = int(payload["guild_id"]) if payload.get("guild_id") else None
        self.channel_id = int(payload["channel_id"])
        user = payload["member"]["user"] if "member" in payload else payload["user"]
        self.user_id = int(user["id"])
        self.sent_at = sent_at
        self.source_message_id = source_message_id  # the message a component/modal came from
        self.callbacks: list[Callback] = []
        self.original_id: int | None = None
        self.followup_ids: list[int] = []
        self.modal: dict[str, Any] | None = None
        self.autocomplete_choices: list[dict[str, Any]] | None = None
        self.expired = False
        self._notifier = notifier
        self._messages = messages

    # ---- the answer ----
    @property
    def callback_type(self) -> int | None:
        return self.callbacks[0].type if self.callbacks else None

    @property
    def acked(self) -> bool:
        return bool(self.callbacks)

    @property
    def deferred(self) -> bool:
        return self.callback_type in (5, 6)

    @property
    def response_time(self) -> float | None:
        """Seconds from INTERACTION_CREATE being sent to the first callback arriving."""
        return self.callbacks[0].at - self.sent_at if self.callbacks else None

    @property
    def time_to_first_text(self) -> float | None:
        """Seconds from INTERACTION_CREATE to the first version of any response message with visible content."""
        times = [v.at for m in self.messages for v in m.history if v.content or v.embeds]
        return min(times) - self.sent_at if times else None

    @property
    def original(self) -> Message | None:
        return self._messages.get(self.original_id) if self.original_id else None

    @property
    def content(self) -> str | None:
        return self.original.content if self.original else None

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.original.embeds if self.original else []

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.original.components if self.original else []

    @property
    def flags(self) -> int:
        return self.original.flags if self.original else 0

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & ids.FLAG_EPHEMERAL)

    @property
    def history(self) -> list[MessageVersion]:
        return self.original.history if self.original else []

    @property
    def edits(self) -> list[MessageVersion]:
        return self.original.edits if self.original else []

    @property
    def followups(self) -> list[Message]:
        return [self._messages[i] for i in self.followup_ids]

    @property
    def messages(self) -> list[Message]:
        """The original response (if any) then the followups, in order."""
        return ([self.original] if self.original else []) + self.followups

    @property
    def files(self) -> list[Attachment]:
        return [a for m in self.messages for a in m.attachments]

    @property
    def text(self) -> str:
        """All visible content of the original and the followups, joined by newlines."""
        return "\n".join(m.content for m in self.messages if m.content)

    # ---- waiting ----
    async def wait_for(self, predicate: Callable[[FakeInteraction], Any], timeout: float = 10.0,
                       what: str = "a condition") -> FakeInteraction:
        """Waits until predicate(self) is truthy (re-checked after every request the bot makes)."""
        await self._notifier.wait_for(lambda: predicate(self), timeout, lambda: f"{what}; {self.describe()}")
        return self

    async def wait_acked(self, timeout: float = 10.0) -> FakeInteraction:
        return await self.wait_for(lambda i: i.acked, timeout, "the interaction callback")

    async def wait_content(self, pattern: str, timeout: float = 10.0) -> FakeInteraction:
        """Waits until the original response's content matches the regex `pattern`."""
        regex = re.compile(pattern, re.S)
        return await self.wait_for(lambda i: i.content is not None and regex.search(i.content), timeout,
                                   f"content matching {pattern!r}")

    def describe(self) -> str:
        original = self.original
        state = (f"original={original.content[:200]!r} flags={original.flags} edits={len(original.edits)}"
                 if original else "no original response")
        return (f"interaction {self.id} (type {self.type}): callbacks={[c.type for c in self.callbacks]} "
                f"{state} followups={len(self.followup_ids)} modal={bool(self.modal)}")

    def __repr__(self) -> str:
        return f"<FakeInteraction {self.describe()}>"
