"""/mod, /status and /forget-me: who may use them, what they show, that every use is audited."""

import csv
import io
import json

import pytest

from tests.bot.test_buttons import finished
from tests.fakediscord import ids


async def seed_requests(harness, count=3):
    rows = []
    for i in range(count):
        user = ids.MEMBER_ID if i % 2 == 0 else ids.OTHER_MEMBER_ID
        inter = await harness.fake.slash("continue", {"prompt": f"needle {i} %_' OR 1=1--", "max_tokens": 3}, user=user)
        rows.append(await finished(harness, inter))
    return rows


async def followup(inter):
    await inter.wait_for(lambda i: i.followups, timeout=20, what="the moderator reply")
    return inter.followups[0]


@pytest.mark.parametrize("user", [ids.MODERATOR_ID, ids.MOD_ROLE_MEMBER_ID])
async def test_moderators_see_recent_requests(harness, user):
    rows = await seed_requests(harness)
    inter = await harness.fake.slash("mod", {}, subcommand="recent", user=user)
    page = await followup(inter)
    assert page.ephemeral
    text = page.embeds[0]["description"]
    assert all(f"#{r.id}" in text for r in rows)
    audit = await harness.store.audit_log(guild_id=ids.GUILD_ID)
    assert any(a.action == "mod.recent" and a.actor_id == user for a in audit)


async def test_members_are_refused_mod_commands(harness):
    for sub, options in [("recent", {}), ("search", {"text": "x"}), ("show", {"id": 1}), ("export", {}), ("reports", {})]:
        inter = await harness.fake.slash("mod", options, subcommand=sub, user=ids.MEMBER_ID)
        await inter.wait_acked()
        assert inter.ephemeral and "Only moderators" in inter.content, sub
    assert await harness.store.audit_log(guild_id=ids.GUILD_ID) == []


async def test_recent_filters_by_user_and_pages(harness):
    rows = await seed_requests(harness, 3)
    inter = await harness.fake.slash("mod", {"user": ids.OTHER_MEMBER_ID}, subcommand="recent", user=ids.MODERATOR_ID)
    text = (await followup(inter)).embeds[0]["description"]
    assert f"#{rows[1].id}" in text and f"#{rows[0].id}`" not in text


async def test_search_matches_literally(harness):
    rows = await seed_requests(harness, 2)
    inter = await harness.fake.slash("mod", {"text": "needle 1 %_' OR 1=1--"}, subcommand="search", user=ids.MODERATOR_ID)
    text = (await followup(inter)).embeds[0]["description"]
    assert f"#{rows[1].id}" in text and f"#{rows[0].id}`" not in text
    nothing = await harness.fake.slash("mod", {"text": "%"}, subcommand="search", user=ids.MODERATOR_ID)
    assert "#" in (await followup(nothing)).embeds[0]["description"]


async def test_show_one_request_scoped_to_the_guild(harness):
    (row,) = await seed_requests(harness, 1)
    inter = await harness.fake.slash("mod", {"id": row.id}, subcommand="show", user=ids.MODERATOR_ID)
    embed = (await followup(inter)).embeds[0]
    assert embed["title"].startswith(f"Request #{row.id}")
    assert "needle 0" in embed["description"]
    missing = await harness.fake.slash("mod", {"id": 9999}, subcommand="show", user=ids.MODERATOR_ID)
    assert "no request #9999" in (await followup(missing)).content


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_export_is_an_attachment(harness, fmt):
    rows = await seed_requests(harness, 2)
    inter = await harness.fake.slash("mod", {"format": fmt}, subcommand="export", user=ids.MODERATOR_ID)
    message = await followup(inter)
    (attachment,) = message.attachments
    assert attachment.filename.endswith(f".{fmt}") and message.ephemeral
    text = attachment.data.decode()
    if fmt == "csv":
        exported = list(csv.DictReader(io.StringIO(text)))
    else:
        exported = [json.loads(line) for line in text.splitlines()]
    assert sorted(int(r["id"]) for r in exported) == sorted(r.id for r in rows)
    assert any(a.action == "mod.export" for a in await harness.store.audit_log(guild_id=ids.GUILD_ID))


async def test_ban_with_a_bad_duration_is_explained(harness):
    inter = await harness.fake.slash("mod", {"user": ids.MEMBER_ID, "duration": "forever"}, subcommand="ban", user=ids.MODERATOR_ID)
    await inter.wait_acked()
    assert "Not banned" in inter.content and "30m" in inter.content
    assert await harness.store.active_ban(ids.MEMBER_ID, ids.GUILD_ID) is None


async def test_status_for_anyone(harness):
    await seed_requests(harness, 1)
    inter = await harness.fake.slash("status", {})
    await inter.wait_acked()
    fields = {f["name"]: f["value"] for f in inter.embeds[0]["fields"]}
    assert fields["Queue"] == "0 waiting" and "tokens/s" in fields["Speed"]
    assert fields["Device"].startswith("cpu")


async def test_forget_me_deletes_after_confirmation(harness):
    rows = await seed_requests(harness, 3)
    inter = await harness.fake.slash("forget-me", {})
    await inter.wait_acked()
    keep = await harness.fake.click(inter, label="Keep everything")
    await keep.wait_acked()
    assert await harness.store.get(rows[0].id) is not None

    inter = await harness.fake.slash("forget-me", {})
    await inter.wait_acked()
    confirm = await harness.fake.click(inter, label="Delete everything")
    await inter.wait_content("Done: 2 requests deleted", timeout=30)
    assert await harness.store.get(rows[0].id) is None and await harness.store.get(rows[2].id) is None
    assert await harness.store.get(rows[1].id) is not None, "other members' requests stay"
    assert confirm.callback_type == 7


async def test_recent_pages_with_buttons(harness):
    from storage.types import NewRequest

    ids_written = []
    for i in range(13):
        new = NewRequest(source="discord", prompt=f"page row {i}", params={}, model_name="tiny",
                         user_id=ids.MEMBER_ID, guild_id=ids.GUILD_ID, channel_id=ids.CHANNEL_ID)
        ids_written.append(await harness.store.record_request(new))
    inter = await harness.fake.slash("mod", {}, subcommand="recent", user=ids.MODERATOR_ID)
    page = await followup(inter)
    first = page.embeds[0]["description"]
    assert f"#{ids_written[-1]}`" in first and f"#{ids_written[0]}`" not in first
    assert page.find_component(label="Previous").get("disabled")
    forward = await harness.fake.click(page, label="Next", user=ids.MODERATOR_ID)
    await forward.wait_acked()
    second = harness.fake.messages[page.id].embeds[0]["description"]
    assert f"#{ids_written[0]}`" in second and f"#{ids_written[-1]}`" not in second
    assert harness.fake.messages[page.id].find_component(label="Next").get("disabled")
    back = await harness.fake.click(page, label="Previous", user=ids.MODERATOR_ID)
    await back.wait_acked()
    assert harness.fake.messages[page.id].embeds[0]["description"] == first


async def test_mod_is_a_server_only_command(harness):
    (mod,) = [c for c in harness.fake.commands[ids.GUILD_ID] if c["name"] == "mod"]
    assert mod.get("contexts") in (None, [0]) and mod.get("dm_permission") in (None, False)
    assert int(mod["default_member_permissions"]) == 1 << 13  # Manage Messages: a hint, checked again at use


async def test_forget_me_confirmation_expires_visibly(harness):
    from bot.services import ViewTimeouts

    harness.bot.services.view_timeouts = ViewTimeouts(confirm_s=0.5)
    inter = await harness.fake.slash("forget-me", {})
    await inter.wait_content("expired", timeout=20)
    assert "/forget-me again" in inter.content and "cannot be undone" not in inter.content
    message = inter.original
    assert message.buttons and all(b.get("disabled") for b in message.buttons)


async def test_mod_pages_expire_visibly(harness):
    from bot.services import ViewTimeouts

    await seed_requests(harness, 1)
    harness.bot.services.view_timeouts = ViewTimeouts(pager_s=0.5)
    inter = await harness.fake.slash("mod", {}, subcommand="recent", user=ids.MODERATOR_ID)
    page = await followup(inter)
    await harness.fake.wait_for(lambda: "expired" in harness.fake.messages[page.id].content, 20, "the pages to expire")
    message = harness.fake.messages[page.id]
    assert "/mod recent again" in message.content
    assert message.buttons and all(b.get("disabled") for b in message.buttons)
