"""Cancel, Regenerate, Continue and Report, each as a real component interaction."""

import asyncio

from tests.bot.conftest import bot_environ, running_bot
from tests.bot.test_refusals import row_for
from tests.fakediscord import ids


async def finished(harness, inter):
    await inter.wait_content(r"tokens · ", timeout=60)
    return await row_for(harness, inter)


async def wait_status(harness, request_id, status, timeout=30):
    for _ in range(int(timeout / 0.05)):
        row = await harness.store.get(request_id)
        if row.status == status:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"request {request_id} is {row.status}, not {status}")


async def test_cancel_running_keeps_batch_mates(fake, tiny_model_dir, tmp_path):
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path), step_s=0.05) as h:
        mine = await fake.slash("continue", {"prompt": "mine", "max_tokens": 60})
        other = await fake.slash("continue", {"prompt": "other", "max_tokens": 20}, user=ids.OTHER_MEMBER_ID)
        await mine.wait_content("Generating", timeout=30)
        click = await fake.click(mine, label="Cancel")
        await click.wait_acked()
        await mine.wait_content(r"(?i)Cancelled by alice", timeout=30)
        row = await wait_status(h, (await row_for(h, mine)).id, "cancelled")
        assert row.error.lower() == "cancelled by alice"
        done = await finished(h, other)
        assert done.status == "done", "the batch-mate finished normally"


async def test_cancel_queued_leaves_at_once(fake, tiny_model_dir, tmp_path):
    env = bot_environ(fake, tiny_model_dir, tmp_path, MAX_BATCH_SIZE="1")
    async with running_bot(fake, env, step_s=0.05) as h:
        first = await fake.slash("continue", {"prompt": "first", "max_tokens": 60})
        await first.wait_content("Generating", timeout=30)
        second = await fake.slash("continue", {"prompt": "second", "max_tokens": 5}, user=ids.OTHER_MEMBER_ID)
        await second.wait_content(r"Queued: #1 in line", timeout=30)
        await fake.click(second, label="Cancel")
        await second.wait_content("(?i)Cancelled by dave", timeout=5)
        assert (await wait_status(h, (await row_for(h, second)).id, "cancelled")).started_at is None
        assert (await h.store.get((await row_for(h, first)).id)).status == "running"


async def test_only_requester_or_moderator_may_cancel(fake, tiny_model_dir, tmp_path):
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path), step_s=0.05):
        inter = await fake.slash("continue", {"prompt": "keep going", "max_tokens": 80})
        await inter.wait_content("Generating", timeout=30)
        stranger = await fake.click(inter, label="Cancel", user=ids.OTHER_MEMBER_ID)
        await stranger.wait_acked()
        assert stranger.ephemeral and "Only the person who asked" in stranger.content
        moderator = await fake.click(inter, label="Cancel", user=ids.MODERATOR_ID)
        await moderator.wait_acked()
        await inter.wait_content("(?i)Cancelled by bob", timeout=30)


async def test_queue_positions_follow_the_queue(fake, tiny_model_dir, tmp_path):
    env = bot_environ(fake, tiny_model_dir, tmp_path, MAX_BATCH_SIZE="1")
    async with running_bot(fake, env, step_s=0.03) as h:
        users = [ids.MEMBER_ID, ids.OTHER_MEMBER_ID, ids.OWNER_ID]
        inters = []
        for i, user in enumerate(users):
            inters.append(await fake.slash("continue", {"prompt": f"p{i}", "max_tokens": 15}, user=user))
        for inter in inters:
            await finished(h, inter)
        third = [v.content for v in inters[2].history]
        assert any("Queued: #2 in line" in c for c in third), third
        assert any("Queued: #1 in line" in c for c in third), third
        assert third.index(next(c for c in third if "#2 in line" in c)) < third.index(next(c for c in third if "#1 in line" in c))


async def test_regenerate_uses_a_new_seed_and_links_the_parent(harness):
    fake = harness.fake
    inter = await fake.slash("continue", {"prompt": "Roll", "max_tokens": 5, "seed": 5})
    parent = await finished(harness, inter)
    click = await fake.click(inter, label="Regenerate", user=ids.OTHER_MEMBER_ID)
    await click.wait_acked()
    assert click.callback_type == 5, "a regenerate is a new deferred reply"
    child = await finished(harness, click)
    assert child.parent_id == parent.id and child.prompt == "Roll"
    assert child.seed != 5 and child.user_id == ids.OTHER_MEMBER_ID
    assert child.params["max_new_tokens"] == 5


async def test_continue_extends_the_text(harness):
    fake = harness.fake
    inter = await fake.slash("continue", {"prompt": "Begin", "max_tokens": 4, "variants": 2, "temperature": 1.0})
    parent = await finished(harness, inter)
    labels = [b.get("label") for b in inter.original.buttons]
    assert "Continue 1" in labels and "Continue 2" in labels
    click = await fake.click(inter, label="Continue 2")
    child = await finished(harness, click)
    assert child.prompt == "Begin" + parent.outputs[1]
    assert child.parent_id == parent.id and child.params["variants"] == 2


async def test_report_goes_to_the_moderators_queue(harness):
    fake = harness.fake
    inter = await fake.slash("continue", {"prompt": "Something rude", "max_tokens": 3})
    row = await finished(harness, inter)
    click = await fake.click(inter, label="Report", user=ids.OTHER_MEMBER_ID)
    await click.wait_for(lambda i: i.modal is not None)
    submitted = await fake.submit_modal(click, {"reason": "this is offensive"})
    await submitted.wait_content("moderators will review")
    assert submitted.ephemeral
    reports = await harness.store.open_reports(ids.GUILD_ID)
    assert [(r.request_id, r.reporter_id, r.reason) for r in reports] == [(row.id, ids.OTHER_MEMBER_ID, "this is offensive")]

    queue = await fake.slash("mod", {}, subcommand="reports", user=ids.MODERATOR_ID)
    await queue.wait_for(lambda i: i.followups and i.followups[0].embeds)
    page = queue.followups[0]
    assert "this is offensive" in page.embeds[0]["description"]
    resolve = await fake.click(page, label=f"Resolve {reports[0].id}", user=ids.MODERATOR_ID)
    await resolve.wait_acked()
    assert await harness.store.open_reports(ids.GUILD_ID) == []
