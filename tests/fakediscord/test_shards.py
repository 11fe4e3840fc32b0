"""The fake gateway shards as Discord does: each session gets only the guilds (and their events) it owns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import discord
import pytest
from discord import app_commands

from tests.fakediscord import FakeDiscord, UsageError, ids

SHARD_0_GUILD = ids.guild_id_on_shard(0, 2)  # the default world's guild (ids.GUILD_ID) is on shard 1 of 2


class EchoClient(discord.AutoShardedClient):
    """A sharded client with one command that says which shard answered it."""

    def __init__(self, **options: object) -> None:
        super().__init__(intents=discord.Intents(guilds=True), guild_ready_timeout=0.05, **options)  # type: ignore[arg-type]
        self.tree = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        @self.tree.command(description="Which shard am I on")
        async def where(interaction: discord.Interaction) -> None:
            shard = interaction.guild.shard_id if interaction.guild else 0
            await interaction.response.send_message(f"shard {shard} of {self.shard_ids}")

        if self.shard_ids is None or 0 in self.shard_ids:
            await self.tree.sync()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(heartbeat_interval=0.5, recommended_shards=2) as fake:
        fake.add_guild(SHARD_0_GUILD, "Shard Zero Guild")
        fake.add_channel(SHARD_0_GUILD, "general")
        fake.add_member(SHARD_0_GUILD, ids.MEMBER_ID, "alice")
        with fake.patch_discord():
            yield fake
        assert fake.unknown_calls == []


async def started(client: discord.Client, fake: FakeDiscord) -> asyncio.Task[None]:
    task = asyncio.create_task(client.start(fake.token))
    await asyncio.wait_for(client.wait_until_ready(), 20)
    return task


async def test_two_sessions_of_one_bot_each_see_only_their_guilds(fake: FakeDiscord) -> None:
    zero, one = EchoClient(shard_count=2, shard_ids=[0]), EchoClient(shard_count=2, shard_ids=[1])
    tasks = [await started(zero, fake), await started(one, fake)]
    try:
        await fake.wait_until_connected(10, shards=[0, 1])
        assert [g.id for g in zero.guilds] == [SHARD_0_GUILD]
        assert [g.id for g in one.guilds] == [ids.GUILD_ID]
        identified = [e.data["shard"] for e in fake.gateway_events if e.name == "IDENTIFY"]
        assert sorted(identified) == [[0, 2], [1, 2]]
        assert fake.shard_of(SHARD_0_GUILD) == 0 and fake.shard_of(ids.GUILD_ID) == 1

        in_zero = await fake.slash("where", guild=SHARD_0_GUILD)
        in_one = await fake.slash("where", guild=ids.GUILD_ID)
        await in_zero.wait_content("shard")
        await in_one.wait_content("shard")
        assert in_zero.content == "shard 0 of [0]" and in_one.content == "shard 1 of [1]"
        in_dm = await fake.slash("where", dm=True)
        await in_dm.wait_content("shard")
        assert in_dm.content == "shard 0 of [0]", "direct messages go to shard 0"
    finally:
        for client in (zero, one):
            await client.close()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_without_shard_zero_a_direct_message_has_nowhere_to_go(fake: FakeDiscord) -> None:
    one = EchoClient(shard_count=2, shard_ids=[1])
    task = await started(one, fake)
    try:
        with pytest.raises(UsageError, match="no identified shard owns guild None"):
            await fake.dispatch("MESSAGE_CREATE", {"channel_id": "1", "content": "hi"})
        assert fake.gateway.session_for(ids.GUILD_ID).shard == [1, 2]
    finally:
        await one.close()
        await asyncio.wait_for(task, 10)


async def test_one_client_runs_the_recommended_shards_and_answers_in_both(fake: FakeDiscord) -> None:
    client = EchoClient()  # no shard_count: discord.py asks GET /gateway/bot, which recommends 2
    task = await started(client, fake)
    try:
        assert client.shard_count == 2 and sorted(client.shards) == [0, 1]
        assert {g.id for g in client.guilds} == {SHARD_0_GUILD, ids.GUILD_ID}
        for guild, shard in ((SHARD_0_GUILD, 0), (ids.GUILD_ID, 1)):
            inter = await fake.slash("where", guild=guild)
            await inter.wait_content("shard")
            assert inter.content.startswith(f"shard {shard} ")
    finally:
        await client.close()
        await asyncio.wait_for(task, 10)
