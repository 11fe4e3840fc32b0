"""Trouble and lifetimes: 10062, expired tokens, gateway resume, long replies, metrics, secrets, SIGTERM."""

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import aiohttp

from bot.ops.logging_setup import setup_logging
from tests.bot.conftest import bot_environ, running_bot
from tests.bot.test_buttons import finished, wait_status
from tests.bot.test_refusals import row_for
from tests.fakediscord import ids
from tests.ops.test_metrics import free_port


async def test_unknown_interaction_marks_the_row_and_the_bot_carries_on(harness):
    harness.fake.fail_interaction(None, code=10062)
    lost = await harness.fake.slash("continue", {"prompt": "too late"})
    row = await row_for(harness, lost)
    row = await wait_status(harness, row.id, "expired")
    assert "10062" in row.error
    ok = await harness.fake.slash("continue", {"prompt": "next", "max_tokens": 2})
    assert (await finished(harness, ok)).status == "done"


async def test_expired_token_result_is_delivered_in_the_channel(fake, tiny_model_dir, tmp_path):
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path), step_s=0.05) as h:
        inter = await fake.slash("continue", {"prompt": "Slow story", "max_tokens": 40})
        await inter.wait_content("Generating", timeout=30)
        fake.expire_token(inter)
        await fake.wait_for(
            lambda: any("tokens · " in m.content for m in fake.channel_messages(ids.CHANNEL_ID)), 60, "the result in the channel"
        )
        messages = fake.channel_messages(ids.CHANNEL_ID)
        text = "\n".join(m.content for m in messages)
        row = await wait_status(h, (await row_for(h, inter)).id, "done")
        assert f"request #{row.id} finished after its Discord interaction expired" in text
        assert row.outputs[0] in text and "**Slow story**" in text
        assert all(m.pings == set() for m in messages)


async def test_gateway_resume_mid_generation_still_delivers(fake, tiny_model_dir, tmp_path):
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path), step_s=0.05) as h:
        inter = await fake.slash("continue", {"prompt": "Through the storm", "max_tokens": 40})
        await inter.wait_content("Generating", timeout=30)
        await fake.disconnect_gateway(code=4000)
        assert any(e.op == 6 for e in fake.gateway_events), "the client resumed its session"
        row = await finished(h, inter)
        assert row.status == "done" and row.outputs[0] in inter.content
        after = await fake.slash("continue", {"prompt": "after", "max_tokens": 2})
        await finished(h, after)


async def test_long_reply_is_split_never_cut(harness):
    prompt = ("word " * 420).strip()  # about 2100 characters before the continuation
    inter = await harness.fake.slash("continue", {"prompt": prompt, "max_tokens": 20})
    await inter.wait_for(lambda i: i.followups and "tokens · " in i.followups[-1].content, timeout=60)
    row = await row_for(harness, inter)
    messages = inter.messages
    assert len(messages) >= 2 and all(len(m.content) <= 2000 for m in messages)
    joined = "".join(m.content for m in messages)
    assert joined.startswith("**" + prompt + "**")
    assert row.outputs[0] in joined
    assert any(b.get("label") == "Regenerate" for b in messages[-1].buttons)


async def test_metrics_count_requests_through_discord(fake, tiny_model_dir, tmp_path):
    port = free_port()
    env = bot_environ(fake, tiny_model_dir, tmp_path, METRICS_PORT=str(port))
    async with running_bot(fake, env) as h:
        inter = await fake.slash("continue", {"prompt": "count me", "max_tokens": 3})
        await finished(h, inter)
        await asyncio.sleep(1.2)  # the gauges are refreshed every second
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 200, await health.text()
    assert 'continuebot_requests_total{status="done"} 1.0' in text
    assert "continuebot_generation_seconds_count 1.0" in text
    assert "continuebot_queue_depth 0.0" in text


async def test_no_token_in_the_logs(fake, tiny_model_dir, tmp_path):
    log_file = tmp_path / "bot.log"
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("DEBUG", log_file, secrets=(fake.token,))
    try:
        async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path)) as h:
            inter = await fake.slash("continue", {"prompt": "secret?", "max_tokens": 3})
            await finished(h, inter)
            fake.expire_token(inter)
            await fake.click(inter, label="Regenerate")  # webhook URLs of several interactions
            await asyncio.sleep(1)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    text = log_file.read_text()
    assert "request" in text and len(text) > 1000, "the log was written at DEBUG"
    assert fake.token not in text
    for interaction in fake.interactions:
        assert interaction.token not in text


async def test_sigterm_finishes_running_and_interrupts_queued(fake, tiny_model_dir, tmp_path):
    env = {**os.environ, **bot_environ(fake, tiny_model_dir, tmp_path, MAX_BATCH_SIZE="1", SHUTDOWN_GRACE_S="30")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await fake.wait_until_connected(120)
        await fake.wait_for(lambda: fake.commands.get(ids.GUILD_ID), 60, "commands to be synced")
        users = [ids.MEMBER_ID, ids.OTHER_MEMBER_ID, ids.OWNER_ID, ids.MODERATOR_ID, ids.MOD_ROLE_MEMBER_ID]
        inters = [await fake.slash("continue", {"prompt": f"job {i}", "max_tokens": 100}, user=u) for i, u in enumerate(users)]
        for inter in inters:
            await inter.wait_content("Queued|Generating", timeout=30)
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 90)
    finally:
        if process.returncode is None:
            process.kill()
    log_text = output.decode()
    assert process.returncode == 0, log_text
    contents = [inter.content for inter in inters]
    assert any("tokens · " in c for c in contents), "the running request finished"
    interrupted = [c for c in contents if "I'm restarting" in c]
    assert interrupted, contents
    assert fake.token not in log_text

    from storage import Store
    async with Store(Path(env["DATABASE_PATH"])) as store:
        rows = await store.recent(limit=10)
    assert {r.status for r in rows} <= {"done", "interrupted"}
    assert sum(r.status == "interrupted" for r in rows) == len(interrupted)


async def test_undeliverable_result_is_logged_expired_with_its_text(fake, tiny_model_dir, tmp_path):
    send_messages = 1 << 11
    quiet = fake.add_channel(ids.GUILD_ID, "read-only", overwrites=[{"id": str(ids.BOT_ID), "type": 1, "deny": str(send_messages), "allow": "0"}])
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path), step_s=0.05) as h:
        inter = await fake.slash("continue", {"prompt": "Nowhere to go", "max_tokens": 30}, channel=quiet.id)
        await inter.wait_content("Generating", timeout=30)
        fake.expire_token(inter)
        row = await wait_status(h, (await row_for(h, inter)).id, "expired", timeout=60)
        assert row.outputs and row.outputs[0], "the text stays in the log for the moderators"
        assert "not writable" in row.error
        assert all("finished after" not in m.content for m in fake.channel_messages(quiet.id))
