"""The streaming check and the owner's FILTER_FILE."""

import random

import pytest

from bot.safety.errors import RuleFileError
from bot.safety.matcher import RuleSet
from bot.safety.rule_file import load_rule_file, parse_rules
from bot.safety.rules import make_rule
from bot.safety.stream import OutputWatch


def watch(*rules):
    return OutputWatch(RuleSet(rules, "output"))


def test_a_word_split_across_deltas_is_caught_when_it_completes():
    w = watch(make_rule("rule 1", "word", "grimble"))
    text = ""
    for delta in ["the gri", "mb", "le is", " here"]:
        text += delta
        verdict = w.check([text], 0)
        if "grimble" in text:
            assert verdict.block is not None and verdict.block.key == "rule 1"
            break
        assert verdict.block is None, text
    else:
        pytest.fail("never blocked")
    assert w.check([text + " more"], 0).block is not None, "a block sticks"


def test_spaced_out_letters_joined_to_a_one_letter_word_are_caught_before_they_show():
    w = watch(make_rule("rule 1", "word", "grimble"))
    text = ""
    for delta in ["I said a g", " r i m", " b l e", " ok"]:
        text += delta
        verdict = w.check([text], 0)
        shown = w.visible([text])[0].replace(" ", "")
        assert "grimble" not in shown.casefold() or verdict.block is not None, text
    assert verdict.block is not None and verdict.block.key == "rule 1"


def test_a_long_phrase_arriving_word_by_word_is_caught():
    w = watch(make_rule("rule 1", "word", "very dark grim sorcery"))
    text = "some "
    for delta in ["very ", "dark ", "grim ", "sorcery "]:
        text += delta
        verdict = w.check([text], 0)
    assert verdict.block is not None


def test_only_whole_words_are_shown_so_a_longer_word_is_not_mistaken():
    w = watch(make_rule("rule 1", "word", "grimble"))
    text = ""
    for delta in ["the grim", "ble", "s are", " fine."]:
        text += delta
        assert w.check([text], 0).block is None, text
        assert not w.visible([text])[0].endswith(("grim", "grimble")), "a word is shown only once it is whole"
    assert w.visible([text]) == ["the grimbles are fine."]
    assert w.check_final([text]).block is None


def test_the_final_check_sees_the_last_word():
    w = watch(make_rule("rule 1", "word", "grimble"))
    assert w.check(["a grimble"], 0).block is None and w.visible(["a grimble"]) == ["a "]
    assert w.check_final(["a grimble"]).block is not None


def test_flags_are_reported_once_per_rule():
    w = watch(make_rule("rule 1", "word", "omen", action="flag"))
    assert [r.key for r in w.check(["an omen "], 0).new_flags] == ["rule 1"]
    assert w.check(["an omen, another omen "], 0).new_flags == ()
    assert w.check_final(["an omen, another omen"]).new_flags == ()


def test_each_variant_is_checked():
    w = watch(make_rule("rule 1", "word", "grimble"))
    assert w.check(["fine ", "a grimble "]).block is not None


PIECES = ["ab", "cd", "abcd", "x", "y", " ", "  ", ". ", "-", "\u200b", "\u0301", "Á", "ｃ", "\n", "cd ab", "b a d"]


@pytest.mark.parametrize("seed", range(40))
def test_the_streaming_check_agrees_with_checking_the_whole_shown_text(seed):
    """Whatever the deltas, each check blocks exactly when the text shown so far, checked whole, would."""
    rng = random.Random(seed)
    rules = RuleSet([
        make_rule("rule 1", "word", "abcd"), make_rule("rule 2", "word", "cd ab", action="flag"),
        make_rule("rule 3", "word", "bad"), make_rule("rule 4", "regex", r"x\s*y\s*x"),
        make_rule("rule 5", "word", "ab cd ab cd"),
    ], "output")
    text = "".join(rng.choice(PIECES) for _ in range(rng.randint(5, 60)))
    w, shown = OutputWatch(rules), 0
    while shown < len(text):
        shown = min(len(text), shown + rng.randint(1, 6))
        streamed = w.check([text[:shown]], 0)
        whole = rules.check(w.visible([text[:shown]])[0])
        assert (streamed.block is not None) == (whole.block is not None), (text[:shown], w.visible([text[:shown]]))
        if streamed.block is not None:
            return
    assert (w.check_final([text]).block is None) == (rules.check(text).block is None)


def test_the_rule_file_reads_every_form(tmp_path):
    path = tmp_path / "filter.txt"
    path.write_text(
        "# owner rules\n"
        "\n"
        "grimble\n"
        "flag output word: dark sorcery => Moderators will look at this.\n"
        "block prompt regex: \\bfree\\s+nitro\\b => Scam links aren't allowed here.\n"
        "note: not a header\n",
        encoding="utf-8",
    )
    first, second, third, fourth = load_rule_file(path)
    assert (first.key, first.kind, first.action, first.applies_to, first.pattern) == ("file line 3", "word", "block", "both", "grimble")
    assert (second.action, second.applies_to, second.pattern, second.reason) == ("flag", "output", "dark sorcery", "Moderators will look at this.")
    assert (third.kind, third.applies_to, third.reason) == ("regex", "prompt", "Scam links aren't allowed here.")
    assert fourth.pattern == "note: not a header" and fourth.guild_id is None


@pytest.mark.parametrize("text, line, why", [
    ("ok\nblock regex: (a+)+\n", 2, "repeats"),
    ("flag flag word: x\n", 1, "given twice"),
    ("\n\n!!!\n", 3, "letter or digit"),
])
def test_a_wrong_line_is_named(text, line, why):
    with pytest.raises(RuleFileError) as error:
        parse_rules(text, "filter.txt")
    assert error.value.line == line and why in str(error.value) and f"filter.txt line {line}" in str(error.value)


def test_an_unreadable_file_is_one_clear_error(tmp_path):
    with pytest.raises(RuleFileError) as error:
        load_rule_file(tmp_path / "missing.txt")
    assert "cannot read it" in str(error.value)
