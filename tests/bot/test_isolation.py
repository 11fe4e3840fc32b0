"""Errors a member can trigger get a clear ephemeral answer through one boundary, and never a traceback in the log."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from tests.fakediscord import ids

STALE = "has changed since Discord last showed it to you"


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage()[:300] for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


async def ephemeral_answer(inter: Any, words: str) -> None:
    await inter.wait_acked()
    await inter.wait_for(lambda i: any(words in m.content for m in i.messages), what=f"a reply with {words!r}")
    assert all(m.ephemeral for m in inter.messages), "only the member sees it"


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


# -- stale or unknown commands, missing options --------------------------------------------------------------


async def test_an_unknown_command_says_it_changed(harness, caplog) -> None:
    payload = harness.fake.slash_payload("status")
    payload["data"]["name"] = "generate"  # a command this bot no longer has, from a client's stale list
    await ephemeral_answer(await harness.fake.send_payload(payload), STALE)
    assert not tracebacks(caplog)


async def test_an_unknown_subcommand_says_it_changed(harness, caplog) -> None:
    payload = harness.fake.slash_payload("mod", subcommand="recent", user=ids.MODERATOR_ID)
    payload["data"]["options"][0]["name"] = "purge"
    await ephemeral_answer(await harness.fake.send_payload(payload), STALE)
    assert not tracebacks(caplog)


async def test_a_missing_required_option_says_the_command_changed(harness, caplog) -> None:
    payload = harness.fake.slash_payload("continue", {"prompt": "hello"})
    payload["data"].pop("options")
    await ephemeral_answer(await harness.fake.send_payload(payload), STALE)
    assert not tracebacks(caplog)
    assert not harness.engine.status().running and not await harness.store.recent()


# -- option values a Discord client would not send -------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "", "nan", "1e999", True])
async def test_a_non_numeric_number_option_is_answered(harness, caplog, value: object) -> None:
    payload = harness.fake.slash_payload("continue", {"prompt": "hello", "temperature": 0.5})
    option = next(o for o in payload["data"]["options"] if o["name"] == "temperature")
    option["value"] = value
    await ephemeral_answer(await harness.fake.send_payload(payload), "`temperature` must be a number")
    assert not tracebacks(caplog)
    assert not await harness.store.recent(), "nothing was generated or logged"


@pytest.mark.parametrize(("options", "words"), [
    ({"days": 1_000_000}, "`days` must be between 1 and 3650"),
    ({"days": 0}, "`days` must be between 1 and 3650"),
    ({"format": "xml"}, "`format` must be one of: csv, jsonl"),
])
async def test_mod_export_refuses_values_out_of_its_declared_range(harness, caplog, options, words) -> None:
    inter = await harness.fake.slash("mod", options, subcommand="export", user=ids.MODERATOR_ID, validate=False)
    await ephemeral_answer(inter, words)
    assert not inter.files
    assert not tracebacks(caplog)


async def test_a_lone_surrogate_in_a_prompt_is_replaced_and_the_request_runs(harness, caplog) -> None:
    inter = await harness.fake.slash("continue", {"prompt": "broken \ud800 text", "max_tokens": 2})
    await inter.wait_content("tokens", timeout=30)
    (row,) = await harness.store.recent()
    assert row.prompt == "broken \ufffd text" and row.status == "done"
    assert not tracebacks(caplog)


# -- forged buttons ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("custom_id", [
    "cb:regen:" + "9" * 25, "cb:cont:9223372036854775808:0", "cb:report:18446744073709551616",
    "cb:cont:1:" + "9" * 30, "cb:cancel:-1", "cb:nuke:1",
])
async def test_a_forged_button_id_is_answered_plainly(harness, caplog, custom_id: str) -> None:
    status = await harness.fake.slash("status")
    await status.wait_acked()
    payload = harness.fake.builder.click(status.original, {"custom_id": custom_id, "type": 2}, ids.MEMBER_ID, None)
    await ephemeral_answer(await harness.fake.send_payload(payload), "That button doesn't work any more")
    assert not tracebacks(caplog)


async def test_a_report_form_with_a_lone_surrogate_is_stored_replaced(harness, caplog) -> None:
    inter = await harness.fake.slash("continue", {"prompt": "Once", "max_tokens": 2})
    await inter.wait_content("tokens", timeout=30)
    report = await harness.fake.click(inter, label="Report")
    await report.wait_acked()
    submitted = await harness.fake.submit_modal(report, {"reason": "bad \udfff output"})
    await ephemeral_answer(submitted, "the moderators will review")
    (open_report,) = await harness.store.open_reports()
    assert open_report.reason == "bad \ufffd output"
    assert not tracebacks(caplog)


# -- a second delivery of the same interaction -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "subcommand", "user"), [
    ("status", None, ids.MEMBER_ID),
    ("mod", "recent", ids.MODERATOR_ID),
    ("forget-me", None, ids.MEMBER_ID),
])
async def test_a_second_delivery_is_benign(harness, caplog, name: str, subcommand: str | None, user: int) -> None:
    fake = harness.fake
    first = await fake.slash(name, subcommand=subcommand, user=user)
    await first.wait_acked()
    await asyncio.sleep(0.2)  # the first delivery's own follow-ups (the /mod pager) are sent
    messages_before = [m.id for m in first.messages]
    await fake.redeliver(first)
    await fake.wait_for(lambda: len(fake.calls_matching("POST", path=f"/interactions/{first.id}/")) >= 2,
                        what="the second delivery's callback")
    await asyncio.sleep(0.3)  # anything the bot would wrongly send after the 40060
    assert [m.id for m in first.messages] == messages_before, "no second answer, no 'Something went wrong'"
    assert "delivered twice" in caplog.text
    assert not tracebacks(caplog)


# -- unknown failures: logged once, with the interaction id, without the token --------------------------------


async def test_an_unexpected_failure_is_logged_once_without_the_token(harness, caplog, monkeypatch) -> None:
    payload = harness.fake.slash_payload("mod", subcommand="recent", user=ids.MODERATOR_ID)
    token = payload["token"]

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"POST https://discord.com/api/v10/webhooks/1/{token}/messages failed")

    monkeypatch.setattr(harness.store, "recent", broken)
    inter = await harness.fake.send_payload(payload)
    await ephemeral_answer(inter, "Something went wrong on my side")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(inter.id) in errors[0].getMessage()
    assert "RuntimeError" in errors[0].getMessage() and "/mod recent" in errors[0].getMessage()
    assert token not in caplog.text
