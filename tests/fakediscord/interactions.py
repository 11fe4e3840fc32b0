"""INTERACTION_CREATE payloads as Discord builds them: slash commands, component clicks, modal submits."""

from __future__ import annotations

import secrets
from typing import Any

from . import ids
from .errors import UsageError
from .records import Attachment, Message
from .state import FakeState
from .world import Channel, DM_CHANNEL

APPLICATION_COMMAND, MESSAGE_COMPONENT, MODAL_SUBMIT = 2, 3, 5
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11
CONTEXT_GUILD, CONTEXT_BOT_DM = 0, 1


def snowflake_of(value: Any) -> int:
    """An id from an int, a numeric string, or anything with an `id` / `user_id` attribute."""
    for attribute in ("user_id", "id"):
        if hasattr(value, attribute):
            return int(getattr(value, attribute))
    return int(value)


class InteractionBuilder:
    """Builds the interaction payloads; validates what a Discord client would refuse to send."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.world = state.world

    def base(self, kind: int, user_id: int, channel: Channel) -> dict[str, Any]:
        """The fields every interaction has, for a user in a guild channel or in their DM with the bot."""
        world = self.world
        payload: dict[str, Any] = {
            "id": str(world.snowflakes.next()), "application_id": str(world.application_id), "type": kind,
            "token": "fake-itk-" + secrets.token_urlsafe(48), "version": 1, "channel_id": str(channel.id),
            "channel": world.channel_payload(channel, for_user=user_id), "locale": "en-US", "entitlements": [],
            "attachment_size_limit": self.state.knobs.attachment_size_limit,
        }
        if channel.guild_id is None:
            payload.update(user=world.user_payload(user_id), context=CONTEXT_BOT_DM,
                           authorizing_integration_owners={"0": "0"},
                           app_permissions=str(ids.EVERYONE_PERMISSIONS))
            return payload
        if world.member(channel.guild_id, user_id) is None:
            raise UsageError(f"user {user_id} is not a member of guild {channel.guild_id}")
        payload.update(
            guild_id=str(channel.guild_id), guild={"id": str(channel.guild_id), "locale": "en-US", "features": []},
            guild_locale="en-US", member=world.member_payload(channel.guild_id, user_id, channel_id=channel.id),
            context=CONTEXT_GUILD, authorizing_integration_owners={"0": str(channel.guild_id)},
            app_permissions=str(world.permissions(channel.guild_id, world.bot.id, channel.id)),
        )
        return payload

    # ---- slash commands ----
    def slash(self, command: dict[str, Any], path: list[str], options: dict[str, Any], user_id: int,
              channel: Channel, validate: bool) -> dict[str, Any]:
        if channel.type == DM_CHANNEL:
            self._check_dm_allowed(command)
        payload = self.base(APPLICATION_COMMAND, user_id, channel)
        resolved: dict[str, dict[str, Any]] = {}
        declared, nest = self._walk_subcommands(command, path)
        built = self._options(declared, options, resolved, channel, user_id, validate)
        for name, kind in reversed(nest):
            built = [{"name": name, "type": kind, "options": built}]
        data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": 1}
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        payload["data"] = data
        return payload

    @staticmethod
    def _check_dm_allowed(command: dict[str, Any]) -> None:
        contexts = command.get("contexts")
        if command.get("guild_id") or command.get("dm_permission") is False or (
                contexts is not None and CONTEXT_BOT_DM not in contexts):
            raise UsageError(f"/{command['name']} is not offered in DMs (guild command, dm_permission or contexts)")

    @staticmethod
    def _walk_subcommands(command: dict[str, Any], path: list[str]) -> tuple[list[dict[str, Any]],
                                                                             list[tuple[str, int]]]:
        declared = command.get("options") or []
        nest: list[tuple[str, int]] = []
        for name in path:
            sub = next((o for o in declared if o["name"] == name and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)),
                       None)
            if sub is None:
                raise UsageError(f"/{command['name']} has no subcommand {name!r}")
            nest.append((name, sub["type"]))
            declared = sub.get("options") or []
        if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in declared):
            names = [o["name"] for o in declared]
            raise UsageError(f"/{' '.join([command['name'], *path])} needs a subcommand: one of {names}")
        return declared, nest

    def _options(self, declared: list[dict[str, Any]], values: dict[str, Any], resolved: dict[str, dict[str, Any]],
                 channel: Channel, user_id: int, validate: bool) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in declared}
        unknown = set(values) - set(by_name)
        if unknown:
            raise UsageError(f"unknown options {sorted(unknown)}; the synced command has {sorted(by_name)}")
        built = []
        for option in declared:
            name = option["name"]
            if values.get(name) is None:
                if option.get("required") and validate:
                    raise UsageError(f"option {name!r} is required")
                continue
            value = self._convert(option, values[name], resolved, channel, user_id)
            if validate:
                check_option_value(option, value)
            built.append({"name": name, "type": option["type"], "value": value})
        return built

    def _convert(self, option: dict[str, Any], value: Any, resolved: dict[str, dict[str, Any]],
                 channel: Channel, user_id: int) -> Any:
        kind = option["type"]
        if kind == STRING:
            return str(value)
        if kind == INTEGER:
            return int(value)
        if kind == NUMBER:
            return float(value)
        if kind == BOOLEAN:
            return bool(value)
        if kind == ATTACHMENT:
            return self._resolve_attachment(value, resolved)
        target = snowflake_of(value)
        if kind == USER or (kind == MENTIONABLE and target in self.world.users):
            self._resolve_user(target, resolved, channel)
        elif kind in (ROLE, MENTIONABLE):
            self._resolve_role(target, resolved, channel)
        elif kind == CHANNEL:
            self._resolve_channel(option, target, resolved, user_id)
        return str(target)

    def _resolve_user(self, user_id: int, resolved: dict[str, dict[str, Any]], channel: Channel) -> None:
        resolved.setdefault("users", {})[str(user_id)] = self.world.user_payload(user_id)
        if channel.guild_id is not None and self.world.member(channel.guild_id, user_id) is not None:
            member = self.world.member_payload(channel.guild_id, user_id, with_user=False, channel_id=channel.id)
            resolved.setdefault("members", {})[str(user_id)] = member

    def _resolve_role(self, role_id: int, resolved: dict[str, dict[str, Any]], channel: Channel) -> None:
        guild = self.world.guild(channel.guild_id or 0)
        if role_id not in guild.roles:
            raise UsageError(f"role {role_id} is not in guild {guild.id}")
        resolved.setdefault("roles", {})[str(role_id)] = guild.roles[role_id].payload()

    def _resolve_channel(self, option: dict[str, Any], channel_id: int, resolved: dict[str, dict[str, Any]],
                         user_id: int) -> None:
        target = self.world.channel(channel_id)
        allowed_types = option.get("channel_types")
        if allowed_types and target.type not in allowed_types:
            raise UsageError(f"channel {channel_id} has type {target.type}, the option takes {allowed_types}")
        entry = self.world.channel_payload(target, for_user=user_id)
        entry.setdefault("permissions", str(ids.ALL_PERMISSIONS))  # DMs
        resolved.setdefault("channels", {})[str(channel_id)] = entry

    def _resolve_attachment(self, value: Any, resolved: dict[str, dict[str, Any]]) -> str:
        filename, data = value if isinstance(value, tuple) else ("upload.bin", value)
        attachment = Attachment(self.world.snowflakes.next(), filename, bytes(data))
        self.state.uploads[attachment.id] = attachment
        resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.payload(self.state.http_base, 0)
        return str(attachment.id)

    # ---- components and modals ----
    def click(self, message: Message, component: dict[str, Any], user_id: int,
              values: list[str] | None) -> dict[str, Any]:
        channel = self.world.channel(message.channel_id)
        payload = self.base(MESSAGE_COMPONENT, user_id, channel)
        data: dict[str, Any] = {"custom_id": component["custom_id"], "component_type": component["type"]}
        if component["type"] != 2:
            data["values"] = [str(v) for v in values or []]
        payload.update(data=data, message=message.payload)
        return payload

    def modal_submit(self, modal: dict[str, Any], values: dict[str, Any], user_id: int, channel: Channel,
                     message: Message | None) -> dict[str, Any]:
        payload = self.base(MODAL_SUBMIT, user_id, channel)
        payload["data"] = {"custom_id": modal["custom_id"], "components": modal_answers(modal, values)}
        if message is not None:
            payload["message"] = message.payload
        return payload


def check_option_value(option: dict[str, Any], value: Any) -> None:
    """The input checks the Discord client enforces: choices, min/max value and length."""
    name = option["name"]
    choices = option.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise UsageError(f"{value!r} is not a choice of option {name!r}: {[c['value'] for c in choices]}")
    if option["type"] in (INTEGER, NUMBER):
        low, high = option.get("min_value"), option.get("max_value")
        if (low is not None and value < low) or (high is not None and value > high):
            raise UsageError(f"option {name!r}={value} is outside [{low}, {high}] (pass validate=False to send it)")
    if option["type"] == STRING:
        low, high = option.get("min_length", 0), option.get("max_length", 6000)
        if not low <= len(value) <= high:
            raise UsageError(f"option {name!r} has {len(value)} characters, allowed {low}..{high} "
                             "(pass validate=False to send it)")


def modal_answers(modal: dict[str, Any], values: dict[str, Any]) -> list[dict[str, Any]]:
    """The submitted components, shaped like the modal's (action rows or labels), filled from `values`."""
    unknown = set(values) - {c.get("custom_id") for c in _modal_inputs(modal.get("components") or [])}
    if unknown:
        raise UsageError(f"the modal has no inputs {sorted(unknown)}")

    def answer(component: dict[str, Any]) -> dict[str, Any]:
        if component.get("type") == 1:
            return {"type": 1, "components": [answer(c) for c in component.get("components") or []]}
        if component.get("type") == 18:
            return {"type": 18, "component": answer(component["component"])}
        value = values.get(component.get("custom_id"), component.get("value") or "")
        if component.get("type") == 4:
            if component.get("required", True) and not value:
                raise UsageError(f"modal input {component.get('custom_id')!r} is required")
            return {"type": 4, "custom_id": component["custom_id"], "value": str(value)}
        return {"type": component.get("type"), "custom_id": component.get("custom_id"),
                "values": [str(v) for v in (value if isinstance(value, list) else [value] if value else [])]}

    return [answer(c) for c in modal.get("components") or [] if c.get("type") in (1, 18)]


def _modal_inputs(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for component in components:
        if component.get("type") == 1:
            found += _modal_inputs(component.get("components") or [])
        elif component.get("type") == 18:
            found += _modal_inputs([component["component"]])
        elif component.get("custom_id"):
            found.append(component)
    return found
