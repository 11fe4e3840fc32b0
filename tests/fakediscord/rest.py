"""The fake's REST API under /api/v10: the endpoints discord.py 2.7 uses, with Discord's errors."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from types import MappingProxyType
from typing import Any, Awaitable, Callable

from aiohttp import web

from . import ids
from .errors import (ApiError, already_acknowledged, invalid_form, invalid_webhook_token, missing_permissions,
                     unknown_interaction, unknown_message, unknown_webhook)
from .records import Call, Callback, FakeInteraction, Message, UploadedFile
from .state import FakeState, RateLimitRule, error_for_code

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CALL = web.RequestKey("call", Call)
NO_AUTH_ROUTES = ("/interactions/", "/webhooks/", "/gateway")
COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")
# callback type -> the interaction types it may answer (2 command, 3 component, 4 autocomplete, 5 modal)
CALLBACK_TYPES_FOR = MappingProxyType({4: (2, 3, 5), 5: (2, 3, 5), 6: (3, 5), 7: (3, 5), 8: (4,), 9: (2, 3)})


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with Content-Type exactly `application/json` (discord.py does not parse it with a charset)."""
    response = web.Response(text=json.dumps(data), status=status, headers=headers)
    response.content_type = "application/json"
    response.charset = None
    return response


def no_content() -> web.Response:
    return web.Response(status=204)


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


async def read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    """The JSON body (payload_json for multipart) and the uploaded files."""
    if request.content_type.startswith("multipart/"):
        payload: Any = None
        files: list[UploadedFile] = []
        reader = await request.multipart()
        async for part in reader:
            data = await part.read()  # type: ignore[union-attr]
            if part.name == "payload_json":
                payload = json.loads(data)
            else:
                files.append(UploadedFile(part.name or "", part.filename or "file",
                                          part.headers.get("Content-Type", "application/octet-stream"), bytes(data)))
        return payload, files
    raw = await request.read()
    return (json.loads(raw) if raw else None), []


class RestApi:
    """aiohttp routes and handlers of the fake REST API."""

    def __init__(self, state: FakeState, gateway_url: Callable[[], str]) -> None:
        self.state = state
        self.gateway_url = gateway_url

    # ---- wiring ----
    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware)
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/users/@me", self.get_me),
            ("GET", "/users/{user_id:\\d+}", self.get_user),
            ("POST", "/users/@me/channels", self.create_dm),
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway_bot),
            ("GET", "/applications/@me", self.get_application),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/applications/{app_id}/commands", self.get_commands),
            ("PUT", "/applications/{app_id}/commands", self.put_commands),
            ("POST", "/applications/{app_id}/commands", self.post_command),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self.get_commands),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self.put_commands),
            ("POST", "/applications/{app_id}/guilds/{guild_id}/commands", self.post_command),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self.interaction_callback),
            ("POST", "/webhooks/{app_id}/{token}", self.execute_webhook),
            ("GET", "/webhooks/{app_id}/{token}/messages/{message_id}", self.get_webhook_message),
            ("PATCH", "/webhooks/{app_id}/{token}/messages/{message_id}", self.edit_webhook_message),
            ("DELETE", "/webhooks/{app_id}/{token}/messages/{message_id}", self.delete_webhook_message),
            ("GET", "/channels/{channel_id}", self.get_channel),
            ("GET", "/channels/{channel_id}/messages", self.list_messages),
            ("POST", "/channels/{channel_id}/messages", self.create_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message),
            ("GET", "/guilds/{guild_id}", self.get_guild),
            ("GET", "/guilds/{guild_id}/channels", self.get_guild_channels),
            ("GET", "/guilds/{guild_id}/roles", self.get_guild_roles),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API_PREFIX + path, handler)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.unknown)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self.get_attachment)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        call = await self._record(request)
        try:
            if self.state.knobs.rest_latency:
                await asyncio.sleep(self.state.knobs.rest_latency)
            limited = self._rate_limited(call)
            if limited is not None:
                response: web.StreamResponse = limited
            else:
                self._check_auth(call)
                response = await handler(request)
        except ApiError as error:
            response = json_response(error.body(), error.status)
        call.status = response.status
        if isinstance(response, web.Response) and response.body and response.content_type == "application/json":
            call.response = json.loads(response.text or "null")
        self.state.notifier.notify()
        return response

    async def _record(self, request: web.Request) -> Call:
        try:
            body, files = await read_body(request)
        except (ValueError, UnicodeDecodeError):
            body, files = None, []
        resource = request.match_info.route.resource
        route = resource.canonical[len(API_PREFIX):] if resource is not None else request.path
        call = Call(request.method, request.path[len(API_PREFIX):], route, dict(request.query), body, files,
                    dict(request.headers), self.state.now())
        request[CALL] = call
        self.state.calls.append(call)
        return call

    def _rate_limited(self, call: Call) -> web.Response | None:
        rule = next((r for r in self.state.knobs.rate_limits if r.matches(call.method, call.path)), None)
        if rule is None:
            return None
        rule.remaining -= 1
        return rate_limit_response(rule)

    def _check_auth(self, call: Call) -> None:
        if call.path.startswith(NO_AUTH_ROUTES):
            return
        if call.headers.get("Authorization") != f"Bot {self.state.token}":
            raise ApiError(401, 0, "401: Unauthorized")

    # ---- identity ----
    async def get_me(self, request: web.Request) -> web.Response:
        user = self.state.world.user_payload(self.state.world.bot.id)
        return json_response({**user, "verified": True, "mfa_enabled": False, "locale": "en-US", "email": None})

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.state.world.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return json_response(user.payload())

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.gateway_url()})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        return json_response({"url": self.gateway_url(), "shards": self.state.knobs.recommended_shards,
                              "session_start_limit": limit})

    async def get_application(self, request: web.Request) -> web.Response:
        world = self.state.world
        return json_response({
            "id": str(world.application_id), "name": world.bot.name, "description": "", "icon": None,
            "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64, "flags": 0,
            "owner": world.user_payload(ids.OWNER_ID if ids.OWNER_ID in world.users else world.bot.id),
            "team": None, "bot": world.user_payload(world.bot.id), "summary": "", "rpc_origins": [],
            "redirect_uris": [], "tags": [], "approximate_guild_count": len(world.guilds),
        })

    # ---- application commands ----
    def _scope(self, request: web.Request) -> int | None:
        if int(request.match_info["app_id"]) != self.state.world.application_id:
            raise ApiError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        if guild_id is not None and int(guild_id) not in self.state.world.guilds:
            raise ApiError(403, 50001, "Missing Access")
        return int(guild_id) if guild_id else None

    async def get_commands(self, request: web.Request) -> web.Response:
        return json_response(self.state.commands.get(self._scope(request), []))

    async def put_commands(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        body = request[CALL].json or []
        if len(body) > 100:
            raise invalid_form("_root", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        for index, command in enumerate(body):
            validate_command(command, str(index))
        old = {(c["name"], c.get("type", 1)): c for c in self.state.commands.get(scope, [])}
        self.state.commands[scope] = [self._store_command(c, scope, old) for c in body]
        return json_response(self.state.commands[scope])

    async def post_command(self, request: web.Request) -> web.Response:
        scope = self._scope(request)
        command = request[CALL].json or {}
        validate_command(command, "_root")
        current = self.state.commands.setdefault(scope, [])
        old = {(c["name"], c.get("type", 1)): c for c in current}
        stored = self._store_command(command, scope, old)
        current[:] = [c for c in current if c["id"] != stored["id"]] + [stored]
        return json_response(stored, 201)

    def _store_command(self, command: dict[str, Any], scope: int | None,
                       old: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
        kind = command.get("type", 1)
        previous = old.get((command["name"], kind))
        snowflake = self.state.world.snowflakes.next
        stored = {
            "options": [], "default_member_permissions": None, "dm_permission": True, "nsfw": False,
            "contexts": None, "integration_types": [0], "description": "", **command,
            "id": previous["id"] if previous else str(snowflake()), "application_id":
            str(self.state.world.application_id), "version": str(snowflake()), "type": kind,
        }
        if scope is not None:
            stored["guild_id"] = str(scope)
        return stored

    # ---- interactions ----
    async def interaction_callback(self, request: web.Request) -> web.Response:
        call: Call = request[CALL]
        interaction = self.state.interactions.get(int(request.match_info["interaction_id"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            raise unknown_interaction()
        code = self.state.take_failure(interaction)
        if code is not None:
            raise error_for_code(code)
        deadline = self.state.knobs.callback_deadline
        if self.state.token_expired(interaction) or (deadline and call.at - interaction.sent_at > deadline):
            raise unknown_interaction()
        if interaction.callbacks:
            raise already_acknowledged()
        body = call.json or {}
        kind, data = body.get("type"), body.get("data")
        self._apply_callback(interaction, kind, data or {}, call.files)
        interaction.callbacks.append(Callback(kind, data, call.at))
        if not truthy(call.query.get("with_response")):
            return no_content()
        return json_response(self._callback_response(interaction, kind))

    def _apply_callback(self, interaction: FakeInteraction, kind: Any, data: dict[str, Any],
                        files: list[UploadedFile]) -> None:
        if interaction.type not in CALLBACK_TYPES_FOR.get(kind, ()) or (
                kind in (6, 7) and interaction.source_message_id is None):
            raise invalid_form("type", "INTERACTION_RESPONSE_TYPE_INVALID",
                               f"Interaction response type {kind} is not valid for interaction type "
                               f"{interaction.type}")
        if kind in (4, 5):
            self._create_original(interaction, data, files, deferred=kind == 5)
        elif kind == 6:
            interaction.original_id = interaction.source_message_id
        elif kind == 7:
            self._update_source(interaction, data, files)
        elif kind == 8:
            interaction.autocomplete_choices = list(data.get("choices") or [])
        else:
            validate_modal(data)
            interaction.modal = data

    def _create_original(self, interaction: FakeInteraction, data: dict[str, Any], files: list[UploadedFile], *,
                         deferred: bool) -> None:
        body = {"flags": data.get("flags", 0)} if deferred else data
        message = self.state.store.create(
            interaction.channel_id, interaction.guild_id, body, [] if deferred else files,
            size_limit=self.state.knobs.attachment_size_limit, loading=deferred,
            extra=self._message_extra(interaction), interaction_id=interaction.id)
        interaction.original_id = message.id

    def _update_source(self, interaction: FakeInteraction, data: dict[str, Any], files: list[UploadedFile]) -> None:
        source = self.state.store.get(interaction.source_message_id or 0)
        if source is None:
            raise unknown_message()
        self.state.store.edit(source, data, files, size_limit=self.state.knobs.attachment_size_limit)
        interaction.original_id = source.id

    def _callback_response(self, interaction: FakeInteraction, kind: int) -> dict[str, Any]:
        original = interaction.original
        info: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        response: dict[str, Any] = {"interaction": info}
        if kind in (4, 5, 7) and original is not None:
            info.update(response_message_id=str(original.id), response_message_loading=kind == 5,
                        response_message_ephemeral=original.ephemeral)
            response["resource"] = {"type": kind, "message": original.payload}
        elif kind == 6:
            response["resource"] = {"type": kind}
        return response

    def _message_extra(self, interaction: FakeInteraction) -> dict[str, Any]:
        world = self.state.world
        metadata: dict[str, Any] = {
            "id": str(interaction.id), "type": interaction.type, "user": world.user_payload(interaction.user_id),
            "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
        }
        if interaction.type == 2:
            metadata["name"] = interaction.payload["data"]["name"]
        if interaction.source_message_id:
            metadata["interacted_message_id"] = str(interaction.source_message_id)
        return {"webhook_id": str(world.application_id), "application_id": str(world.application_id),
                "type": 20 if interaction.type == 2 else 0, "interaction_metadata": metadata}

    # ---- interaction webhooks ----
    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        if int(request.match_info["app_id"]) != self.state.world.application_id:
            raise unknown_webhook()
        interaction = self.state.interactions_by_token.get(request.match_info["token"])
        if interaction is None or self.state.token_expired(interaction):
            raise invalid_webhook_token()
        return interaction

    def _webhook_message(self, request: web.Request) -> tuple[FakeInteraction, Message]:
        interaction = self._webhook_interaction(request)
        key = request.match_info["message_id"]
        message_id = interaction.original_id if key == "@original" else int(key) if key.isdigit() else None
        allowed = {interaction.original_id, *interaction.followup_ids}
        message = self.state.store.get(message_id) if message_id in allowed and message_id else None
        if message is None:
            raise unknown_message()
        return interaction, message

    async def execute_webhook(self, request: web.Request) -> web.Response:
        call: Call = request[CALL]
        interaction = self._webhook_interaction(request)
        if not interaction.acked:
            raise unknown_webhook()
        message = self.state.store.create(interaction.channel_id, interaction.guild_id, call.json or {}, call.files,
                                          size_limit=self.state.knobs.attachment_size_limit,
                                          extra=self._message_extra(interaction), interaction_id=interaction.id)
        interaction.followup_ids.append(message.id)
        return json_response(message.payload) if truthy(call.query.get("wait")) else no_content()

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        return json_response(self._webhook_message(request)[1].payload)

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        call: Call = request[CALL]
        _, message = self._webhook_message(request)
        self.state.store.edit(message, call.json or {}, call.files, size_limit=self.state.knobs.attachment_size_limit)
        return json_response(message.payload)

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        _, message = self._webhook_message(request)
        message.deleted = True
        return no_content()

    # ---- channels and messages ----
    def _channel(self, request: web.Request, needed: int = ids.VIEW_CHANNEL) -> Any:
        channel = self.state.world.find_channel(int(request.match_info["channel_id"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        if channel.guild_id is not None:
            perms = self.state.world.permissions(channel.guild_id, self.state.world.bot.id, channel.id)
            if perms & needed != needed:
                raise missing_permissions()
        return channel

    def _channel_message(self, request: web.Request) -> Message:
        channel = self._channel(request, ids.VIEW_CHANNEL | ids.READ_MESSAGE_HISTORY)
        message = self.state.store.get(int(request.match_info["message_id"]))
        if message is None or message.channel_id != channel.id or message.ephemeral:
            raise unknown_message()
        return message

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self.state.world.channel_payload(self._channel(request)))

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request, ids.VIEW_CHANNEL | ids.READ_MESSAGE_HISTORY)
        limit = int(request.query.get("limit", 50))
        found = [m for m in self.state.store.messages.values()
                 if m.channel_id == channel.id and not m.deleted and not m.ephemeral]
        return json_response([m.payload for m in sorted(found, key=lambda m: -m.id)[:limit]])

    async def create_message(self, request: web.Request) -> web.Response:
        call: Call = request[CALL]
        channel = self._channel(request, ids.VIEW_CHANNEL | ids.SEND_MESSAGES)
        body = call.json or {}
        extra: dict[str, Any] = {}
        if body.get("message_reference"):
            extra = {"type": 19, "message_reference": body["message_reference"]}
        message = self.state.store.create(channel.id, channel.guild_id, body, call.files, extra=extra)
        if channel.guild_id is not None:
            message.payload["guild_id"] = str(channel.guild_id)
        return json_response(message.payload)

    async def get_message(self, request: web.Request) -> web.Response:
        return json_response(self._channel_message(request).payload)

    async def edit_message(self, request: web.Request) -> web.Response:
        call: Call = request[CALL]
        message = self._channel_message(request)
        self.state.store.edit(message, call.json or {}, call.files)
        return json_response(message.payload)

    async def delete_message(self, request: web.Request) -> web.Response:
        self._channel_message(request).deleted = True
        return no_content()

    async def create_dm(self, request: web.Request) -> web.Response:
        recipient = int((request[CALL].json or {}).get("recipient_id", 0))
        if recipient not in self.state.world.users:
            raise invalid_form("recipient_id", "NUMBER_TYPE_COERCE", "Value is not snowflake.")
        return json_response(self.state.world.channel_payload(self.state.world.dm_channel(recipient)))

    # ---- guilds ----
    def _guild(self, request: web.Request) -> Any:
        guild = self.state.world.guilds.get(int(request.match_info["guild_id"]))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    async def get_guild(self, request: web.Request) -> web.Response:
        return json_response(self.state.world.guild_payload(self._guild(request)))

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        return json_response([self.state.world.channel_payload(c) for c in guild.channels.values()])

    async def get_guild_roles(self, request: web.Request) -> web.Response:
        return json_response([r.payload() for r in self._guild(request).roles.values()])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        user_id = int(request.match_info["user_id"])
        if user_id not in guild.members:
            raise ApiError(404, 10007, "Unknown Member")
        return json_response(self.state.world.member_payload(guild.id, user_id))

    # ---- the rest ----
    async def unknown(self, request: web.Request) -> web.Response:
        call: Call = request[CALL]
        self.state.unknown_calls.append(call)
        log.warning("fake Discord: unknown endpoint %s %s", call.method, call.path)
        raise ApiError(404, 0, f"404: Not Found (the fake Discord has no {call.method} {call.path})")

    async def get_attachment(self, request: web.Request) -> web.Response:
        attachment_id = int(request.match_info["attachment_id"])
        for message in self.state.store.messages.values():
            for attachment in message.attachments:
                if attachment.id == attachment_id:
                    return web.Response(body=attachment.data, content_type=attachment.content_type)
        upload = self.state.uploads.get(attachment_id)
        if upload is None:
            raise web.HTTPNotFound()
        return web.Response(body=upload.data, content_type=upload.content_type)


def rate_limit_response(rule: RateLimitRule) -> web.Response:
    """A 429 with the headers and body discord.py needs to wait and retry (Via marks it as not Cloudflare)."""
    headers = {
        "Via": "1.1 google", "Retry-After": str(math.ceil(rule.retry_after)), "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{time.time() + rule.retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{rule.retry_after:.3f}", "X-RateLimit-Bucket": "fakebucket",
        "X-RateLimit-Scope": "global" if rule.is_global else "user",
    }
    if rule.is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": rule.retry_after, "global": rule.is_global}
    return json_response(body, 429, headers)


def validate_command(command: dict[str, Any], where: str) -> None:
    """The checks Discord makes on a command at sync time (names, descriptions, option order and counts)."""
    name = command.get("name") or ""
    kind = command.get("type", 1)
    if kind == 1 and (not COMMAND_NAME.match(name) or name != name.lower()):
        raise invalid_form(f"{where}.name", "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}")
    if kind == 1 and not 1 <= len(command.get("description") or "") <= 100:
        raise invalid_form(f"{where}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    validate_options(command.get("options") or [], f"{where}.options")


def validate_options(options: list[dict[str, Any]], where: str) -> None:
    if len(options) > 25:
        raise invalid_form(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    for index, option in enumerate(options):
        here = f"{where}.{index}"
        name = option.get("name") or ""
        if not COMMAND_NAME.match(name) or name != name.lower():
            raise invalid_form(f"{here}.name", "APPLICATION_COMMAND_INVALID_NAME", f"Option name is invalid: {name!r}")
        if not 1 <= len(option.get("description") or "") <= 100:
            raise invalid_form(f"{here}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if option.get("required") and seen_optional:
            raise invalid_form(f"{here}.required", "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                               "Required options must be placed before non-required options")
        seen_optional = seen_optional or not option.get("required")
        if len(option.get("choices") or []) > 25:
            raise invalid_form(f"{here}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if option.get("type") in (1, 2):
            validate_options(option.get("options") or [], f"{here}.options")


def validate_modal(data: dict[str, Any]) -> None:
    if not data.get("custom_id") or len(data["custom_id"]) > 100:
        raise invalid_form("data.custom_id", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    if not 1 <= len(data.get("title") or "") <= 45:
        raise invalid_form("data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")
    if not 1 <= len(data.get("components") or []) <= 5:
        raise invalid_form("data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")

