"""Self-tests of the fake Discord: a small real discord.py bot connects, syncs, answers and survives trouble."""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from typing import Any, AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from tests.fakediscord import FakeDiscord, UsageError, ids


class PingView(discord.ui.View):
    """A button that edits its message, and one that opens a modal."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Ping", custom_id="ping")
    async def ping(self, interaction: discord.Interaction, button: discord.ui.Button[PingView]) -> None:
        await interaction.response.edit_message(content=f"pong from {interaction.user.name}", view=None)

    @discord.ui.button(label="Why", custom_id="why")
    async def why(self, interaction: discord.Interaction, button: discord.ui.Button[PingView]) -> None:
        await interaction.response.send_modal(ReasonModal())


class ReasonModal(discord.ui.Modal, title="Tell us why"):
    reason: discord.ui.TextInput[ReasonModal] = discord.ui.TextInput(label="Reason", custom_id="reason")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"reason: {self.reason.value}", ephemeral=True)


class MiniBot(commands.Bot):
    """The smallest bot that exercises what the product bot does with Discord."""

    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05,
                         allowed_mentions=discord.AllowedMentions.none())
        self.errors: list[BaseException] = []
        self.resumed = asyncio.Event()

    async def setup_hook(self) -> None:
        tree = self.tree
        tree.on_error = self._on_tree_error  # type: ignore[method-assign]

        @tree.command(description="Say it back")
        @app_commands.describe(text="what to say", times="how many times")
        async def echo(interaction: discord.Interaction, text: str,
                       times: app_commands.Range[int, 1, 3] = 1) -> None:
            await interaction.response.send_message(" ".join([text] * times))

        @tree.command(description="Defer, edit, follow up with a file")
        async def work(interaction: discord.Interaction, prompt: str) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(content="working...")
            await asyncio.sleep(0.05)
            await interaction.edit_original_response(content=f"**{prompt}** done")
            await interaction.followup.send("the log", file=discord.File(__import__("io").BytesIO(b"a,b\n1,2\n"),
                                                                          filename="log.csv"), ephemeral=True)

        @tree.command(description="Buttons")
        async def buttons(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("press", view=PingView())

        @tree.command(description="Who is that")
        async def who(interaction: discord.Interaction, member: discord.Member) -> None:
            perms = interaction.permissions.manage_messages
            await interaction.response.send_message(f"{member.name} by {interaction.user.name} mm={perms}")

        mod = app_commands.Group(name="mod", description="Moderation", guild_only=True)

        @mod.command(description="Recent requests")
        async def recent(interaction: discord.Interaction, user: discord.User | None = None) -> None:
            await interaction.response.send_message(f"recent for {user.name if user else 'everyone'}",
                                                    ephemeral=True)

        tree.add_command(mod)
        await tree.sync()

    async def _on_tree_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        self.errors.append(getattr(error, "original", error))

    async def on_resumed(self) -> None:
        self.resumed.set()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval=0.5) as fake:
        with fake.patch_discord():
            yield fake
        assert fake.unknown_calls == []


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[MiniBot]:
    bot = MiniBot()
    task = asyncio.create_task(bot.start(fake.token))
    await asyncio.wait_for(bot.wait_until_ready(), 10)
    yield bot
    await bot.close()
    await asyncio.wait_for(task, 10)


async def test_bot_connects_over_zlib_and_syncs_commands(fake: FakeDiscord, bot: MiniBot) -> None:
    assert fake.gateway.connect_params[0]["compress"] == "zlib-stream"
    assert bot.user is not None and bot.user.id == ids.BOT_ID
    guild = bot.get_guild(ids.GUILD_ID)
    assert guild is not None and guild.get_channel(ids.CHANNEL_ID) is not None
    assert guild.me.guild_permissions.send_messages
    synced = {c["name"]: c for c in fake.commands[None]}
    assert set(synced) == {"echo", "work", "buttons", "who", "mod"}
    assert synced["echo"]["options"][1]["max_value"] == 3
    assert [e.name for e in fake.gateway_events if e.op != 1] == ["IDENTIFY"]


async def test_json_responses_have_the_exact_content_type(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bot {fake.token}"}
        async with session.get(fake.api_base + "/users/@me", headers=headers) as response:
            assert response.headers["Content-Type"] == "application/json"
        async with session.get(fake.api_base + "/users/@me", headers={"Authorization": "Bot wrong"}) as response:
            assert response.status == 401


async def test_slash_command_gets_typed_options_and_a_reply(fake: FakeDiscord, bot: MiniBot) -> None:
    inter = await fake.slash("echo", {"text": "hi @everyone", "times": 2})
    await inter.wait_for(lambda i: i.content is not None)
    assert inter.callback_type == 4
    assert inter.content == "hi @everyone hi @everyone"
    assert inter.original is not None and inter.original.pings == set()
    call = fake.message_calls()[-1]
    assert call.message_payload is not None
    assert call.message_payload["allowed_mentions"] == {"parse": []}


async def test_discord_client_limits_are_enforced_unless_disabled(fake: FakeDiscord, bot: MiniBot) -> None:
    with pytest.raises(UsageError, match="outside"):
        await fake.slash("echo", {"text": "x", "times": 9})
    with pytest.raises(UsageError, match="unknown options"):
        await fake.slash("echo", {"txt": "x"})
    inter = await fake.slash("echo", {"text": "x", "times": 9}, validate=False)  # discord.py trusts Discord
    await inter.wait_for(lambda i: i.content)
    assert inter.content == " ".join(["x"] * 9)


async def test_defer_edit_and_followup_with_file(fake: FakeDiscord, bot: MiniBot) -> None:
    inter = await fake.slash("work", {"prompt": "story"})
    await inter.wait_for(lambda i: i.followups, what="the followup")
    assert inter.callback_type == 5 and inter.response_time is not None
    assert [v.content for v in inter.history] == ["", "working...", "**story** done"]
    assert not inter.original.loading  # type: ignore[union-attr]
    followup = inter.followups[0]
    assert followup.ephemeral and followup.content == "the log"
    assert [(f.filename, f.data) for f in inter.files] == [("log.csv", b"a,b\n1,2\n")]
    patches = fake.calls_matching("PATCH", route="/webhooks/{app_id}/{token}/messages/{message_id}")
    assert len(patches) == 2 and all(c.json["allowed_mentions"] == {"parse": []} for c in patches)


async def test_button_click_updates_the_message(fake: FakeDiscord, bot: MiniBot) -> None:
    inter = await fake.slash("buttons", user=ids.OTHER_MEMBER_ID)
    await inter.wait_for(lambda i: i.components)
    click = await fake.click(inter, "ping")
    await click.wait_for(lambda c: c.acked)
    assert click.callback_type == 7
    assert inter.content == "pong from dave" and inter.components == []
    with pytest.raises(UsageError, match="no component"):
        await fake.click(inter, "ping")


async def test_modal_round_trip(fake: FakeDiscord, bot: MiniBot) -> None:
    inter = await fake.slash("buttons")
    await inter.wait_for(lambda i: i.components)
    opened = await (await fake.click(inter, label="Why")).wait_for(lambda c: c.modal)
    assert opened.modal is not None and opened.modal["title"] == "Tell us why"
    submitted = await fake.submit_modal(opened, {"reason": "because"})
    await submitted.wait_for(lambda s: s.content)
    assert submitted.content == "reason: because" and submitted.ephemeral


async def test_resolved_members_and_permissions(fake: FakeDiscord, bot: MiniBot) -> None:
    inter = await fake.slash("who", {"member": ids.MOD_ROLE_MEMBER_ID}, user=ids.MODERATOR_ID)
    await inter.wait_for(lambda i: i.content)
    assert inter.content == "carol by bob mm=True"
    inter = await fake.slash("who", {"member": ids.MODERATOR_ID}, user=ids.MEMBER_ID)
    await inter.wait_for(lambda i: i.content)
    assert inter.content == "bob by alice mm=False"


async def test_subcommands_and_dm_rules(fake: FakeDiscord, bot: MiniBot) -> None:
    inter = await fake.slash("mod recent", {"user": ids.MEMBER_ID}, user=ids.MODERATOR_ID)
    await inter.wait_for(lambda i: i.content)
    assert inter.content == "recent for alice" and inter.ephemeral
    with pytest.raises(UsageError, match="not offered in DMs"):
        await fake.slash("mod recent", dm=True)
    dm = await fake.slash("echo", {"text": "private"}, dm=True)
    await dm.wait_for(lambda i: i.content)
    assert dm.guild_id is None and dm.content == "private"


async def test_unknown_interaction_surfaces_as_not_found(fake: FakeDiscord, bot: MiniBot) -> None:
    fake.fail_interaction(code=10062)
    inter = await fake.slash("echo", {"text": "late"})
    await inter.wait_for(lambda i: bot.errors, what="the bot to see the failure")
    error = bot.errors[0]
    assert isinstance(error, discord.NotFound) and error.code == 10062
    assert not inter.acked


async def test_expired_token_rejects_webhooks(fake: FakeDiscord, bot: MiniBot) -> None:
    inter = await fake.slash("work", {"prompt": "p"})
    await inter.wait_for(lambda i: i.acked)
    fake.expire_token(inter)
    await inter.wait_for(lambda i: bot.errors, what="the edit to fail")
    error = bot.errors[0]
    assert isinstance(error, discord.HTTPException) and error.code == 50027


async def test_rate_limit_is_waited_out_by_discord_py(fake: FakeDiscord, bot: MiniBot) -> None:
    fake.rate_limit_next(r"/callback$", retry_after=0.2)
    inter = await fake.slash("echo", {"text": "slowly"})
    await inter.wait_for(lambda i: i.content, timeout=5)
    statuses = [c.status for c in fake.calls_matching("POST", r"/callback$")]
    assert statuses == [429, 200]


async def test_gateway_disconnect_resumes_and_replays(fake: FakeDiscord, bot: MiniBot) -> None:
    await fake.disconnect_gateway(4000, wait=False)
    missed = await fake.slash("echo", {"text": "while away"})  # buffered, replayed on RESUME
    await fake.wait_for(lambda: any(e.name == "RESUME" for e in fake.gateway_events), what="RESUME")
    await missed.wait_for(lambda i: i.content)
    await asyncio.wait_for(bot.resumed.wait(), 5)
    assert missed.content == "while away"
    await fake.disconnect_gateway(None)  # abrupt TCP loss
    after = await fake.slash("echo", {"text": "back"})
    await after.wait_for(lambda i: i.content)
    assert [e.name for e in fake.gateway_events if e.op in (2, 6)] == ["IDENTIFY", "RESUME", "RESUME"]


async def test_content_over_2000_characters_is_refused(fake: FakeDiscord, bot: MiniBot) -> None:
    inter = await fake.slash("echo", {"text": "x" * 1500, "times": 2}, validate=False)
    await inter.wait_for(lambda i: bot.errors)
    error = bot.errors[0]
    assert isinstance(error, discord.HTTPException) and error.code == 50035 and not inter.acked


async def test_plain_text_gateway_without_compression(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(fake.gateway_url + "?v=10&encoding=json") as ws:
            hello = await ws.receive_json()
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 500
            await ws.send_json({"op": 2, "d": {"token": fake.token, "intents": 1, "properties": {}}})
            ready = await ws.receive_json()
            guild = await ws.receive_json()
    assert ready["t"] == "READY" and ready["d"]["resume_gateway_url"] == fake.gateway_url
    assert guild["t"] == "GUILD_CREATE" and guild["s"] == 2


async def test_zlib_frames_each_end_with_a_sync_flush(fake: FakeDiscord) -> None:
    inflate = zlib.decompressobj()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(fake.gateway_url + "?v=10&encoding=json&compress=zlib-stream") as ws:
            frame = await ws.receive_bytes()
            assert frame.endswith(b"\x00\x00\xff\xff")
            hello: dict[str, Any] = json.loads(inflate.decompress(frame))
            await ws.send_json({"op": 2, "d": {"token": "bad", "intents": 1, "properties": {}}})
            closed = await ws.receive()
    assert hello["op"] == 10
    assert closed.type == aiohttp.WSMsgType.CLOSE and closed.data == 4004


async def test_members_intent_gets_the_member_list_by_chunking(fake: FakeDiscord) -> None:
    intents = discord.Intents.default()
    intents.members = True
    client = discord.Client(intents=intents, guild_ready_timeout=0.05)
    task = asyncio.create_task(client.start(fake.token))
    try:
        await asyncio.wait_for(client.wait_until_ready(), 10)
        guild = client.get_guild(ids.GUILD_ID)
        assert guild is not None and guild.chunked
        assert {m.name for m in guild.members} == {"continuebot", "alice", "bob", "carol", "dave", "olivia"}
        assert any(e.name == "REQUEST_GUILD_MEMBERS" for e in fake.gateway_events)
    finally:
        await client.close()
        await asyncio.wait_for(task, 10)


async def test_everything_stops_on_close() -> None:
    async with FakeDiscord(heartbeat_interval=0.5) as fake:
        with fake.patch_discord():
            client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
            task = asyncio.create_task(client.start(fake.token))
            await asyncio.wait_for(client.wait_until_ready(), 10)
            await client.close()
            await asyncio.wait_for(task, 10)
        assert not fake.gateway.connected()
    assert discord.http.Route.BASE == "https://discord.com/api/v10"
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    loop = asyncio.get_running_loop()

    def heartbeat_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate()
                if isinstance(t, discord.gateway.KeepAliveHandler) and t.ws.loop is loop]

    for _ in range(100):
        if not heartbeat_threads():
            break
        await asyncio.sleep(0.02)
    assert heartbeat_threads() == []
