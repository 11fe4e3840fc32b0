"""Shards: one process running both shards, and two processes (one shard of two each) sharing one database."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import aiohttp
import pytest

from storage import Store
from tests.bot.conftest import bot_environ, running_bot
from tests.fakediscord import FakeDiscord, ids
from tests.ops.test_metrics import free_port

SHARD_0_GUILD = ids.guild_id_on_shard(0, 2)  # the default world's guild (ids.GUILD_ID) is on shard 1 of 2
BOTH_GUILDS = f"{SHARD_0_GUILD},{ids.GUILD_ID}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """The default world plus a guild on shard 0 of 2, where alice and the owner are members too."""
    async with FakeDiscord(recommended_shards=2) as server:
        server.add_guild(SHARD_0_GUILD, "Shard Zero Guild")
        server.add_channel(SHARD_0_GUILD, "general")
        server.add_member(SHARD_0_GUILD, ids.MEMBER_ID, "alice")
        server.add_member(SHARD_0_GUILD, ids.OWNER_ID, "olivia")
        yield server
        assert server.unknown_calls == []


async def continued(fake: FakeDiscord, guild: int, prompt: str):
    inter = await fake.slash("continue", {"prompt": prompt, "max_tokens": 3}, guild=guild)
    return await inter.wait_content("tokens · ", timeout=60)


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            return response.status, await response.text()


async def test_one_process_runs_both_shards_and_answers_in_each(fake, tiny_model_dir, tmp_path):
    port = free_port()
    env = bot_environ(fake, tiny_model_dir, tmp_path, SHARD_COUNT="2", DISCORD_GUILD_IDS=BOTH_GUILDS,
                      METRICS_PORT=str(port))
    async with running_bot(fake, env) as h:
        await fake.wait_until_connected(30, shards=[0, 1])
        assert sorted(h.bot.shards) == [0, 1]
        for guild, prompt in ((SHARD_0_GUILD, "Zero says"), (ids.GUILD_ID, "One says")):
            await continued(fake, guild, prompt)
        rows = await h.store.recent(limit=10)
        assert {(r.guild_id, r.status) for r in rows} == {(SHARD_0_GUILD, "done"), (ids.GUILD_ID, "done")}

        status = await fake.slash("status", guild=SHARD_0_GUILD)
        await status.wait_acked()
        shards = {f["name"]: f["value"] for f in status.embeds[0]["fields"]}["Shards"]
        assert "this server is on shard 0; this process runs 2 of 2" in shards
        assert "0: " in shards and "1: " in shards and " ms" in shards, shards

        base = f"http://127.0.0.1:{port}"
        await fake.wait_for(lambda: h.bot.latencies and all(0 <= s < 10 for _, s in h.bot.latencies), 30,
                            "a heartbeat on both shards")
        await asyncio.sleep(1.2)  # the gauges are refreshed every second
        _, metrics = await get(base + "/metrics")
        assert 'continuebot_gateway_latency_seconds{shard="0"}' in metrics
        assert 'continuebot_gateway_latency_seconds{shard="1"}' in metrics
        assert await get(base + "/healthz") == (200, "connected to Discord (shards 0,1 of 2)\n")

        # one shard's connection drops: it alone resumes, the other shard's session is untouched
        before = len(fake.gateway_events)
        await fake.disconnect_gateway(code=None, shard=1)
        returns = [e for e in fake.gateway_events[before:] if e.name in ("IDENTIFY", "RESUME")]
        assert [(e.name, e.data["session_id"]) for e in returns] == [("RESUME", fake.gateway.by_shard[1].session_id)]
        await fake.wait_for(lambda: not h.bot.disconnected, 30, "shard 1 to be back")
        assert (await get(base + "/healthz"))[0] == 200
        await continued(fake, ids.GUILD_ID, "One is back")


async def test_shard_count_defaults_to_discords_recommendation(fake, tiny_model_dir, tmp_path):
    env = bot_environ(fake, tiny_model_dir, tmp_path, DISCORD_GUILD_IDS=BOTH_GUILDS)
    async with running_bot(fake, env) as h:
        await fake.wait_until_connected(30, shards=[0, 1])
        assert h.bot.shard_count == 2, "GET /gateway/bot recommended 2"
        await continued(fake, SHARD_0_GUILD, "Zero again")


# -- two processes ------------------------------------------------------------------------------------------


async def start_process(env: dict[str, str], cwd: Path, log: IO[bytes]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=str(cwd), env=env,
                                                stdout=log, stderr=asyncio.subprocess.STDOUT)


def pid_of_owner(database: Path, guild_id: int) -> int:
    """The pid of the process whose store logged the guild's request (its owner lock file holds the pid)."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        (owner,) = conn.execute("SELECT owner FROM requests WHERE guild_id = ?", (guild_id,)).fetchone()
    return int((database.with_name(database.name + ".owners") / f"{owner}.lock").read_text())


async def mod_recent(fake: FakeDiscord, guild: int) -> str:
    inter = await fake.slash("mod", {}, subcommand="recent", user=ids.OWNER_ID, guild=guild)
    await inter.wait_for(lambda i: i.followups and i.followups[0].embeds, 20, "the list of requests")
    return inter.followups[0].embeds[0]["description"]


async def test_two_processes_one_shard_each_share_the_database(fake, tiny_model_dir, tmp_path):
    base = {**os.environ, **bot_environ(fake, tiny_model_dir, tmp_path, SHARD_COUNT="2",
                                        DISCORD_GUILD_IDS=BOTH_GUILDS)}
    database = Path(base["DATABASE_PATH"])
    logs = [tmp_path / "shard0.log", tmp_path / "shard1.log"]
    processes: list[asyncio.subprocess.Process] = []
    try:
        for shard, log_path in enumerate(logs):
            with log_path.open("wb") as log:
                processes.append(await start_process({**base, "SHARD_IDS": str(shard)}, tmp_path, log))
        await fake.wait_until_connected(60, shards=[0, 1])
        await fake.wait_for(lambda: fake.commands.get(ids.GUILD_ID) and fake.commands.get(SHARD_0_GUILD), 60,
                            "commands synced to both guilds")

        # each guild's /continue reaches only the process that runs its shard, which answers and logs it
        await continued(fake, SHARD_0_GUILD, "Shard zero")
        await continued(fake, ids.GUILD_ID, "Shard one")
        assert pid_of_owner(database, SHARD_0_GUILD) == processes[0].pid
        assert pid_of_owner(database, ids.GUILD_ID) == processes[1].pid

        # both in the one database; /mod recent lists each server's own request, whichever process answers it
        async with Store(database) as store:
            rows = await store.recent(limit=10)
        assert sorted((r.guild_id, r.prompt, r.status) for r in rows) == sorted(
            [(SHARD_0_GUILD, "Shard zero", "done"), (ids.GUILD_ID, "Shard one", "done")])
        zero, one = await mod_recent(fake, SHARD_0_GUILD), await mod_recent(fake, ids.GUILD_ID)
        assert "Shard zero" in zero and "Shard one" not in zero, "a server's moderators see only its requests"
        assert "Shard one" in one and "Shard zero" not in one

        # a member's /forget-me, answered by shard 0's process, deletes what shard 1's process logged too
        forget = await fake.slash("forget-me", guild=SHARD_0_GUILD)
        await forget.wait_acked()
        await fake.click(forget, label="Delete everything")
        await forget.wait_content("Done: 2 requests deleted", timeout=30)
        assert "Nothing found." in await mod_recent(fake, ids.GUILD_ID), "shard 1's process sees the deletion"
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), 60) for p in processes]
    outputs = [p.read_text() for p in logs]
    assert codes == [0, 0], outputs
    assert "synced" in outputs[0] and "not synced here" in outputs[1], "only shard 0's process syncs commands"
    assert all("Traceback" not in o for o in outputs), outputs
