"""Message formatting: bold prompt, variants, splitting without losing text, streaming snapshots."""

from bot.discord_app import render
from bot.discord_app.components import parse_custom_id
from bot.durations import parse_duration

import pytest
from datetime import timedelta


def test_compose_puts_prompt_in_bold_then_continuation():
    assert render.compose("Once upon", [" a time"]) == "**Once upon** a time"


def test_prompt_markdown_cannot_break_out_of_bold():
    text = render.compose("**not bold** _x_", ["!"])
    assert text.startswith("**\\*\\*not bold\\*\\* \\_x\\_**")


def test_variants_are_separated_and_numbered():
    text = render.compose("P", ["one", "two", "three"])
    assert "Variant 1 of 3" in text and "Variant 3 of 3" in text
    assert text.index("one") < text.index("two") < text.index("three")


@pytest.mark.parametrize("size", [1999, 2000, 2001, 4500, 12345])
def test_split_never_loses_or_exceeds(size):
    words = ("lorem ipsum dolor sit amet\n" * 1000)[:size]
    chunks = render.split_message(words)
    assert all(len(c) <= 2000 for c in chunks)
    assert "".join(chunks) == words


def test_split_without_spaces_cuts_hard_but_keeps_everything():
    text = "x" * 4100
    chunks = render.split_message(text)
    assert [len(c) for c in chunks] == [2000, 2000, 100]


def test_progress_fits_one_message_and_shows_the_end():
    snapshot = render.progress("p", ["a" * 5000 + "END"], "Generating…")
    assert len(snapshot) <= 2000
    assert snapshot.endswith("END" + render.CURSOR)
    assert snapshot.startswith("-# Generating…")


def test_queued_status_and_eta():
    assert render.queued_status(3, 12.4) == "Queued: #3 in line, about 12 s"
    assert render.queued_status(1, None) == "Queued: #1 in line"
    assert render.eta_text(400) == "about 7 min"


def test_custom_ids_round_trip():
    action = parse_custom_id("cb:cont:42:3")
    assert (action.action, action.request_id, action.variant) == ("cont", 42, 3)
    assert parse_custom_id("cb:cancel:7").request_id == 7
    assert parse_custom_id("something-else") is None
    assert parse_custom_id("cb:drop:1") is None


def test_durations():
    assert parse_duration("1d12h") == timedelta(hours=36)
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("2w") == timedelta(weeks=2)
    for bad in ("soon", "5", "0m", "1y"):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("30min", timedelta(minutes=30)),
        ("30 minutes", timedelta(minutes=30)),
        ("30 mins", timedelta(minutes=30)),
        ("1h30m", timedelta(minutes=90)),
        ("1 hour 30 minutes", timedelta(minutes=90)),
        ("2 weeks", timedelta(weeks=2)),
        ("1 Day", timedelta(days=1)),
        ("3hrs", timedelta(hours=3)),
    ],
)
def test_durations_in_the_forms_people_type(typed, expected):
    assert parse_duration(typed) == expected


@pytest.mark.parametrize("typed", ["99999999999w", "999999999999999999999m", "5000d"])
def test_absurd_durations_are_refused_with_a_message(typed):
    with pytest.raises(ValueError, match="1 minute to 10 years"):
        parse_duration(typed)


@pytest.mark.parametrize("typed", ["soon", "30 minutes please", "m30", "1h30"])
def test_a_refusal_says_which_forms_are_accepted(typed):
    with pytest.raises(ValueError, match="30min, 30 minutes.*1h30m.*2 weeks"):
        parse_duration(typed)
