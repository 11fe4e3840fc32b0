"""The output safety filter through the fake Discord, real SQLite and the tiny model."""

from __future__ import annotations

import asyncio

import regex

from bot.config import load_settings
from bot.runner import serve
from bot.safety.normalize import normalize, words
from models.types import Delta, Done, GenerationParams, GenerationRequest
from tests.bot.conftest import bot_environ, running_bot
from tests.bot.test_buttons import finished, wait_status
from tests.bot.test_mod import followup
from tests.bot.test_refusals import row_for
from tests.fakediscord import ids

RULE_WORDS = regex.compile(r"[\p{L}\p{N}]{2,}")


async def mod(harness, sub, options, user=ids.MODERATOR_ID):
    inter = await harness.fake.slash("mod", options, subcommand=f"filter {sub}", user=user)
    await inter.wait_acked()
    return inter


async def add_rule(harness, pattern, **options):
    inter = await mod(harness, "add", {"pattern": pattern, **options})
    assert inter.content.startswith("Added `rule "), inter.content
    return int(inter.content.split("`rule ")[1].split("`")[0])


async def test_moderators_manage_rules_and_every_use_is_audited(harness):
    rule_id = await add_rule(harness, "grimble", reason="no monsters please")
    refused = await mod(harness, "add", {"pattern": "(a+)+b", "kind": "regex"})
    assert refused.ephemeral and refused.content.startswith("Rule not added:") and "(a+)+" in refused.content
    slow = await mod(harness, "add", {"pattern": r"(\w|\d)+$", "kind": "regex"})
    assert "could take too long" in slow.content

    listed = await mod(harness, "list", {})
    assert listed.ephemeral and f"rule {rule_id}" in listed.embeds[0]["description"]
    tried = await mod(harness, "test", {"text": "the G R I M B L E!"})
    assert f"as a prompt: `rule {rule_id}`" in tried.content and f"as an output: `rule {rule_id}`" in tried.content
    assert "No rule matches" in (await mod(harness, "test", {"text": "grimbles"})).content

    removed = await mod(harness, "remove", {"id": rule_id})
    assert removed.content.startswith(f"Removed `rule {rule_id}`")
    assert "no filter rule" in (await mod(harness, "remove", {"id": rule_id})).content
    assert await harness.store.filter_rules(ids.GUILD_ID) == []

    audit = await harness.store.audit_log(guild_id=ids.GUILD_ID)
    actions = [(a.action, a.target, a.detail.get("refused") is not None) for a in reversed(audit)]
    assert actions == [
        ("mod.filter.add", f"filter_rule:{rule_id}", False), ("mod.filter.add", None, True),
        ("mod.filter.add", None, True), ("mod.filter.list", None, False), ("mod.filter.test", None, False),
        ("mod.filter.test", None, False), ("mod.filter.remove", f"filter_rule:{rule_id}", False),
        ("mod.filter.remove", f"filter_rule:{rule_id}", False),
    ]
    assert all(a.actor_id == ids.MODERATOR_ID for a in audit)


async def test_members_cannot_use_the_filter_commands(harness):
    for sub, options in [("add", {"pattern": "x1"}), ("remove", {"id": 1}), ("list", {}), ("test", {"text": "x"})]:
        inter = await mod(harness, sub, options, user=ids.MEMBER_ID)
        assert inter.ephemeral and "Only moderators" in inter.content, sub
    assert await harness.store.filter_rules(ids.GUILD_ID) == []
    assert await harness.store.audit_log(guild_id=ids.GUILD_ID) == []


async def test_a_blocked_prompt_is_refused_with_the_public_reason_only(harness):
    rule_id = await add_rule(harness, "grimble", applies_to="prompt", reason="no monsters please")
    inter = await harness.fake.slash("continue", {"prompt": "A ｇｒｉ\u200bmblé story"})
    await inter.wait_acked()
    assert inter.ephemeral and "no monsters please" in inter.content and "grimble" not in inter.content.lower()
    row = await row_for(harness, inter)
    assert row.status == "rejected" and f"rule {rule_id}" in row.error and row.started_at is None


async def test_a_flagged_prompt_runs_and_opens_a_report_in_mod_reports(harness):
    rule_id = await add_rule(harness, "dark sorcery", action="flag", applies_to="prompt", reason="worth a look")
    inter = await harness.fake.slash("continue", {"prompt": "Some DARK  s o r c e r y", "max_tokens": 3})
    row = await finished(harness, inter)
    assert row.status == "done"
    (report,) = await harness.store.open_reports(ids.GUILD_ID)
    assert report.request_id == row.id and report.reporter_id == ids.BOT_ID and f"rule {rule_id}" in report.reason
    page = await followup(await harness.fake.slash("mod", {}, subcommand="reports", user=ids.MODERATOR_ID))
    assert f"on `#{row.id}`" in page.embeds[0]["description"] and "flagged the prompt" in page.embeds[0]["description"]


async def deltas_of(harness, prompt, max_tokens):
    """The deltas the engine streams for a greedy request (what /continue with temperature 0 gets too)."""
    params = GenerationParams(max_new_tokens=max_tokens, temperature=0.0)
    handle = harness.engine.submit(GenerationRequest(prompt=prompt, params=params))
    deltas = []
    async for event in handle:
        if isinstance(event, Delta):
            deltas.append(event.text)
        if isinstance(event, Done):
            return deltas, event.result.texts[0]
    raise AssertionError("the request did not finish")


def word_joined_by_two_deltas(deltas):
    """A whole word of the output that no single delta holds: it exists only once two deltas join."""
    text = "".join(deltas)
    starts, position = [], 0
    for delta in deltas:
        starts.append(position)
        position += len(delta)
    for found in RULE_WORDS.finditer(text):
        first = max(i for i, s in enumerate(starts) if s <= found.start())
        last = max(i for i, s in enumerate(starts) if s < found.end())
        word = found.group()
        whole = last > first and found.end() < len(text) and words(normalize(word)) == [normalize(word)]
        if whole and normalize(word) not in words(normalize(text[:found.start()])):  # its first appearance
            return word, found.end()
    raise AssertionError(f"no word spans two deltas in {deltas!r}")


async def test_an_output_matching_only_once_two_deltas_join_is_withheld_before_it_is_ever_sent(fake, tiny_model_dir, tmp_path):
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path), step_s=0.02) as h:
        deltas, full = await deltas_of(h, "The cat", 60)
        word, end = word_joined_by_two_deltas(deltas)
        rule_id = await add_rule(h, word, applies_to="output", reason="that word is not welcome")

        inter = await h.fake.slash("continue", {"prompt": "The cat", "max_tokens": 60, "temperature": 0})
        await inter.wait_content("Withheld by this server's filter", timeout=60)
        row = await wait_status(h, (await row_for(h, inter)).id, "withheld")

        sent = [version.content for version in inter.history] + [m.content for m in inter.followups]
        assert len(sent) >= 2
        for content in sent:
            assert normalize(word) not in words(normalize(content)), content
        assert "that word is not welcome" in inter.content
        # The row keeps the full text up to (and including) the match; generation stopped there.
        assert row.outputs[0].startswith(full[:end]) and len(row.outputs[0]) < len(full)
        assert f"rule {rule_id}" in row.error
        (report,) = await h.store.open_reports(ids.GUILD_ID)
        assert report.request_id == row.id and "withheld the output" in report.reason
        page = await followup(await h.fake.slash("mod", {}, subcommand="reports", user=ids.MODERATOR_ID))
        assert f"on `#{row.id}`" in page.embeds[0]["description"]


async def test_a_flag_rule_on_outputs_lets_the_text_stand(fake, tiny_model_dir, tmp_path):
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path)) as h:
        _, full = await deltas_of(h, "The cat", 30)
        word = RULE_WORDS.findall(full)[0]
        await add_rule(h, word, applies_to="output", action="flag")
        inter = await h.fake.slash("continue", {"prompt": "The cat", "max_tokens": 30, "temperature": 0})
        row = await finished(h, inter)
        assert row.status == "done" and row.outputs[0] == full
        (report,) = await h.store.open_reports(ids.GUILD_ID)
        assert report.request_id == row.id and "flagged the output" in report.reason


async def test_file_rules_apply_in_every_server(fake, tiny_model_dir, tmp_path):
    rules = tmp_path / "filter.txt"
    rules.write_text("# owner's rules\nblock prompt word: grimble => keep it friendly\n", encoding="utf-8")
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path, FILTER_FILE=str(rules))) as h:
        inter = await h.fake.slash("continue", {"prompt": "the Grímble returns"})
        await inter.wait_acked()
        assert inter.ephemeral and "keep it friendly" in inter.content
        assert "file line 2" in (await row_for(h, inter)).error
        listed = await mod(h, "list", {})
        assert "The owner's rules" in listed.embeds[0]["description"]


async def test_a_wrong_filter_file_stops_the_start_with_the_line(fake, tiny_model_dir, tmp_path, capsys):
    rules = tmp_path / "filter.txt"
    rules.write_text("fine\nblock regex: (a+)+\n", encoding="utf-8")
    settings = load_settings(bot_environ(fake, tiny_model_dir, tmp_path, FILTER_FILE=str(rules)), env_file=None)
    code = await asyncio.wait_for(serve(settings, settings.require_token()), 30)
    assert code == 2
    err = capsys.readouterr().err
    assert "FILTER_FILE" in err and "line 2" in err and "Traceback" not in err
