"""/continue end to end: defer, queue position, streaming edits, final message, splitting, mentions."""

from tests.bot.conftest import bot_environ, running_bot
from tests.fakediscord import ids


async def test_defer_then_result_logged(harness):
    inter = await harness.fake.slash("continue", {"prompt": "Hello there", "max_tokens": 6, "seed": 7})
    await inter.wait_acked()
    assert inter.callback_type == 5, "a /continue is deferred at once"
    await inter.wait_content(r"seed 7", timeout=60)
    assert inter.content.startswith("**Hello there**")
    rows = await harness.store.recent()
    assert len(rows) == 1
    row = rows[0]
    assert row.status == "done" and row.seed == 7 and row.prompt == "Hello there"
    assert row.user_id == ids.MEMBER_ID and row.guild_id == ids.GUILD_ID and row.channel_id == ids.CHANNEL_ID
    assert row.outputs[0] and row.outputs[0] in inter.content
    labels = {b.get("label") for b in inter.original.buttons}
    assert {"Regenerate", "Continue", "Report"} <= labels


async def test_same_seed_gives_same_text(harness):
    first = await harness.fake.slash("continue", {"prompt": "Same", "max_tokens": 6, "seed": 11, "temperature": 1.0})
    await first.wait_content(r"seed 11", timeout=60)
    second = await harness.fake.slash("continue", {"prompt": "Same", "max_tokens": 6, "seed": 11, "temperature": 1.0})
    await second.wait_content(r"seed 11", timeout=60)
    body = lambda text: text.split("\n-# ")[0]  # noqa: E731  (the footer holds ids and timings)
    assert body(first.content) == body(second.content)


async def test_allowed_mentions_empty_on_every_message_and_edit(harness):
    inter = await harness.fake.slash("continue", {"prompt": "@everyone hi <@&1> <@2>", "max_tokens": 4})
    await inter.wait_content(r"tokens", timeout=60)
    payloads = [c.message_payload for c in harness.fake.calls if c.message_payload is not None]
    assert payloads, "the bot sent or edited messages"
    for payload in payloads:
        if "content" in payload or "embeds" in payload:
            assert payload.get("allowed_mentions") == {"parse": []}, payload
    assert all(not m.pings for m in harness.fake.messages.values())


async def test_streaming_edits_are_throttled(fake, tiny_model_dir, tmp_path):
    async with running_bot(fake, bot_environ(fake, tiny_model_dir, tmp_path), step_s=0.03) as h:
        inter = await h.fake.slash("continue", {"prompt": "Stream", "max_tokens": 64, "temperature": 0})
        await inter.wait_content(r"tokens", timeout=120)
    edits = inter.original.edits
    assert "Queued" in edits[0].content or "Generating" in edits[0].content
    streamed = [v for v in edits if v.content.endswith(" ▌") and not v.content.endswith("**Stream** ▌")]
    assert len(streamed) >= 2, "text appeared while it was being generated"
    assert all(len(v.content) <= 2000 for v in edits)
    # The first text is shown at once; after it at most one edit per interval (0.3 s in tests);
    # the final message replaces the last snapshot immediately.
    first_text = edits.index(streamed[0])
    times = [v.at for v in edits[first_text:-1]]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps and all(gap >= 0.28 for gap in gaps), gaps
