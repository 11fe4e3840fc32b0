"""Every refusal is immediate, ephemeral, human, and logged as 'rejected' with its reason."""

import asyncio

import pytest

from tests.bot.conftest import bot_environ, running_bot
from tests.fakediscord import ids


async def refused(harness, inter, words: str) -> None:
    await inter.wait_acked()
    assert inter.callback_type == 4 and inter.ephemeral, "refusals are immediate ephemeral replies"
    assert words in inter.content
    row = await row_for(harness, inter)
    assert row.status == "rejected" and words in row.error


async def row_for(harness, inter):
    """The logged row of this interaction (written right after the reply)."""
    async def find():
        rows = await harness.store.recent(limit=50)
        return next((r for r in rows if r.interaction_id == inter.id), None)

    for _ in range(200):
        row = await find()
        if row is not None:
            return row
        await asyncio.sleep(0.02)
    raise AssertionError(f"no logged row for interaction {inter.id}")


async def test_queue_full_says_how_long_it_is(fake, tiny_model_dir, tmp_path):
    env = bot_environ(fake, tiny_model_dir, tmp_path, MAX_BATCH_SIZE="1", MAX_QUEUE_SIZE="1")
    async with running_bot(fake, env, step_s=0.05) as h:
        users = [ids.MEMBER_ID, ids.OTHER_MEMBER_ID, ids.OWNER_ID]
        first = await fake.slash("continue", {"prompt": "a", "max_tokens": 100}, user=users[0])
        await first.wait_content("Generating", timeout=30)
        second = await fake.slash("continue", {"prompt": "b", "max_tokens": 5}, user=users[1])
        await second.wait_acked()
        third = await fake.slash("continue", {"prompt": "c"}, user=users[2])
        await refused(h, third, "queue is full (1 requests waiting")


async def test_per_user_pending_limit(fake, tiny_model_dir, tmp_path):
    env = bot_environ(fake, tiny_model_dir, tmp_path, MAX_PENDING_PER_USER="1", MAX_BATCH_SIZE="1")
    async with running_bot(fake, env, step_s=0.05) as h:
        first = await fake.slash("continue", {"prompt": "a", "max_tokens": 100})
        await first.wait_acked()
        second = await fake.slash("continue", {"prompt": "b"})
        await refused(h, second, "already have 1 requests waiting")


async def test_cooldown_says_when_to_retry(fake, tiny_model_dir, tmp_path):
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path, USER_COOLDOWN_S="600")) as h:
        first = await fake.slash("continue", {"prompt": "a", "max_tokens": 2})
        await first.wait_content("tokens", timeout=30)
        second = await fake.slash("continue", {"prompt": "b"})
        await refused(h, second, "you can ask again <t:")
        other = await fake.slash("continue", {"prompt": "c", "max_tokens": 2}, user=ids.OTHER_MEMBER_ID)
        await other.wait_content("tokens", timeout=30)


async def test_banned_user_is_refused_and_unban_restores(harness):
    fake = harness.fake
    ban = await fake.slash("mod", {"user": ids.MEMBER_ID, "reason": "spam", "duration": "1d"}, subcommand="ban", user=ids.MODERATOR_ID)
    await ban.wait_content("can no longer use the bot")
    inter = await fake.slash("continue", {"prompt": "let me in"})
    await refused(harness, inter, "You are banned from using this bot here until")
    unban = await fake.slash("mod", {"user": ids.MEMBER_ID}, subcommand="unban", user=ids.MODERATOR_ID)
    await unban.wait_content("can use the bot again")
    again = await fake.slash("continue", {"prompt": "thanks", "max_tokens": 2})
    await again.wait_content("tokens", timeout=30)


async def test_channel_not_allowed(fake, tiny_model_dir, tmp_path):
    env = bot_environ(fake, tiny_model_dir, tmp_path, ALLOWED_CHANNEL_IDS=str(ids.OTHER_CHANNEL_ID))
    async with running_bot(fake, env) as h:
        inter = await fake.slash("continue", {"prompt": "here?"}, channel=ids.CHANNEL_ID)
        await refused(h, inter, "can't be used in this channel")
        ok = await fake.slash("continue", {"prompt": "there", "max_tokens": 2}, channel=ids.OTHER_CHANNEL_ID)
        await ok.wait_content("tokens", timeout=30)


async def test_role_not_allowed(fake, tiny_model_dir, tmp_path):
    env = bot_environ(fake, tiny_model_dir, tmp_path, ALLOWED_ROLE_IDS=str(ids.MOD_ROLE_ID))
    async with running_bot(fake, env) as h:
        inter = await fake.slash("continue", {"prompt": "me?"}, user=ids.MEMBER_ID)
        await refused(h, inter, "need one of the roles")
        ok = await fake.slash("continue", {"prompt": "me", "max_tokens": 2}, user=ids.MOD_ROLE_MEMBER_ID)
        await ok.wait_content("tokens", timeout=30)


@pytest.mark.parametrize("allow", [False, True])
async def test_direct_messages_only_when_allowed(fake, tiny_model_dir, tmp_path, allow):
    env = bot_environ(fake, tiny_model_dir, tmp_path, DISCORD_GUILD_IDS="", ALLOW_DMS=str(allow).lower())
    async with running_bot(fake, env) as h:
        inter = await fake.slash("continue", {"prompt": "psst", "max_tokens": 2}, dm=True)
        if allow:
            await inter.wait_content("tokens", timeout=30)
            assert (await row_for(h, inter)).guild_id is None
        else:
            await refused(h, inter, "only work in servers")


async def test_out_of_range_values_are_checked_again_by_the_bot(harness):
    inter = await harness.fake.slash("continue", {"prompt": "x", "temperature": 9.0}, validate=False)
    await inter.wait_acked()
    assert inter.ephemeral
    assert "temperature" in inter.content


async def test_refused_when_the_queue_would_outlast_the_interaction_token(fake, tiny_model_dir, tmp_path):
    from bot.discord_app.jobs import JobOptions

    env = bot_environ(fake, tiny_model_dir, tmp_path, MAX_BATCH_SIZE="1")
    # The real budget is 12 of the token's 15 minutes; a tiny one makes any wait too long.
    options = JobOptions(edit_interval_s=0.3, token_budget_s=0.01)
    async with running_bot(fake, env, options, step_s=0.05) as h:
        first = await fake.slash("continue", {"prompt": "long", "max_tokens": 60})
        await first.wait_content("Generating", timeout=30)
        await fake.wait_for(lambda: h.engine.eta_for_new() is not None, 30, "a measured ETA")
        second = await fake.slash("continue", {"prompt": "later"}, user=ids.OTHER_MEMBER_ID)
        await refused(h, second, "The queue is too long right now")
