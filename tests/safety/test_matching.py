"""Rules match what a reader would see as the same words, and only whole words."""

import logging

import pytest

from bot.safety import bounded_regex
from bot.safety.errors import RuleRefused
from bot.safety.matcher import RuleSet
from bot.safety.rules import make_rule


def rules(*specs, target="output"):
    built = [make_rule(f"rule {i}", kind, pattern, action=action, applies_to=applies)
             for i, (kind, pattern, action, applies) in enumerate(specs, start=1)]
    return RuleSet(built, target)


WORDS = rules(("word", "grimble", "block", "both"), ("word", "dark sorcery", "block", "both"))


@pytest.mark.parametrize("text", [
    "a GRIMBLE appears",
    "ｇｒｉｍｂｌｅ",  # full-width
    "grímblé",  # accents
    "g\u0301r\u0308imble",  # combining marks
    "gri\u200bmb\u200dle",  # zero-width space and joiner
    "gri\u00admble",  # soft hyphen
    "g r i m b l e!",  # spaced out
    "a g r i m b l e",  # spaced out beside a one-letter word, which joins the run
    "I s a w g r i m b l e s",
    "d a r k s o r c e r y",  # a phrase, spaced out
    "g.r.i.m.b.l.e",
    "g_r_i_m_b_l_e",
    "g - r - i - m - b - l - e",
    "(grimble)",
    "DARK   Sorcery",  # extra spacing in a phrase
    "dark\nsorcery",
    "dárk s.o.r.c.e.r.y",
])
def test_obfuscated_variants_are_caught(text):
    verdict = WORDS.check(text)
    assert verdict.block is not None, text


@pytest.mark.parametrize("text", ["grimbles", "ungrimble", "grimble_d", "dark magic sorcery", "sorcery dark", ""])
def test_only_whole_words_and_whole_phrases_match(text):
    if text == "grimble_d":  # an underscore splits words, like punctuation does
        assert WORDS.check(text).block is not None
        return
    assert WORDS.check(text).clean, text


def test_block_wins_and_every_flag_is_listed():
    ruleset = rules(("word", "alpha", "flag", "both"), ("word", "beta", "block", "both"), ("word", "gamma", "flag", "both"))
    verdict = ruleset.check("gamma alpha beta")
    assert verdict.block.key == "rule 2"
    assert sorted(r.key for r in verdict.flags) == ["rule 1", "rule 3"]


def test_rules_apply_to_their_target_only():
    prompt_only = [make_rule("rule 1", "word", "grimble", applies_to="prompt")]
    assert RuleSet(prompt_only, "prompt").check("grimble").block is not None
    assert RuleSet(prompt_only, "output").check("grimble").clean


def test_a_regex_sees_the_normalised_text():
    ruleset = rules(("regex", r"\bfree\s+nitro\b", "block", "both"))
    assert ruleset.check("Get ＦＲＥＥ  n\u200bitro now").block is not None
    assert ruleset.check("freenitro").clean


@pytest.mark.parametrize("pattern, why", [
    (r"(a+)+b", "repeats"),
    (r"(?:\w+\s)+end", "repeats"),
    (r"(\w|\d)+$", "too long"),
    (r"^(a|a)+$", "too long"),
    (r"(ab)\1", "backreferences"),
    (r"(?P<x>a)(?P=x)", "backreferences"),
    (r"a{5000}", "repeat counts"),
    (r"a*", "empty text"),
    (r"(unclosed", "not valid"),
    ("x" * 201, "longer than"),
])
def test_risky_regexes_are_refused_with_a_reason(pattern, why):
    with pytest.raises(RuleRefused) as refused:
        make_rule("rule 1", "regex", pattern)
    assert why in refused.value.reason


@pytest.mark.parametrize("kind, pattern, why", [
    ("word", "   ", "empty"),
    ("word", "!!!", "letter or digit"),
    ("glob", "x", "kind"),
])
def test_bad_word_rules_are_refused(kind, pattern, why):
    with pytest.raises(RuleRefused) as refused:
        make_rule("rule 1", kind, pattern)
    assert why in refused.value.reason


def test_a_search_that_runs_out_of_time_counts_as_no_match(caplog):
    # A pattern check_regex would refuse, compiled directly to stand for a rule that is slow on one text.
    compiled = bounded_regex.compile_regex(r"(\w|\d)+$")
    with caplog.at_level(logging.WARNING):
        assert bounded_regex.search(compiled, "a" * 5000 + "!") is None
    assert "skipped" in caplog.text
