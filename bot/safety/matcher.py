"""A compiled set of rules: finds which rules a text matches, in time that grows with the text, not the word list."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import regex

from bot.safety import bounded_regex
from bot.safety.normalize import fold, normalize, spaced_runs, words
from bot.safety.rules import Rule

Target = Literal["prompt", "output"]


@dataclass(frozen=True)
class Verdict:
    """What a text matched: the first ``block`` rule (if any) and every ``flag`` rule."""

    block: Rule | None = None
    flags: tuple[Rule, ...] = ()

    @property
    def clean(self) -> bool:
        return self.block is None and not self.flags


CLEAN = Verdict()


class RuleSet:
    """The rules that apply to one target (prompts or outputs), compiled for matching."""

    def __init__(self, rules: Iterable[Rule], target: Target) -> None:
        self.rules = tuple(r for r in rules if r.applies(target))
        # Word rules by their first word: one dict lookup per word of the text, however many rules there are.
        self._phrases: dict[str, list[tuple[tuple[str, ...], Rule]]] = defaultdict(list)
        self._regexes: list[tuple[regex.Pattern[str], Rule]] = []
        for rule in self.rules:
            if rule.kind == "word":
                tokens = tuple(words(normalize(rule.pattern)))
                self._phrases[tokens[0]].append((tokens, rule))
            else:
                self._regexes.append((bounded_regex.compile_regex(rule.pattern), rule))
        # The most words a word rule has: how far back a new word can complete a match.
        self.longest_phrase = max((len(p) for group in self._phrases.values() for p, _ in group), default=1)

    def __len__(self) -> int:
        return len(self.rules)


    def check(self, text: str) -> Verdict:
        """Which rules ``text`` matches, after normalisation (case, accents, invisible characters, spacing)."""
        if not self.rules:
            return CLEAN
        normalized = normalize(text)
        found = self.match_words(words(normalized)) + self.match_runs(spaced_runs(fold(text)))
        return verdict(found + self.match_regexes(normalized))

    def match_words(self, tokens: Sequence[str], start: int = 0) -> list[Rule]:
        """Word rules whose words appear in ``tokens`` in order, starting at index ``start`` or later."""
        phrases = self._phrases
        found: list[Rule] = []
        for i in range(start, len(tokens)):
            candidates = phrases.get(tokens[i])
            if candidates is None:
                continue
            for phrase, rule in candidates:
                if len(phrase) == 1 or tuple(tokens[i:i + len(phrase)]) == phrase:
                    found.append(rule)
        return found

    def match_runs(self, runs: Sequence[str]) -> list[Rule]:
        """Word rules whose words, run together, appear inside a joined spaced-out run ("a g r i m b l e").

        Only runs are searched this way (substrings of ordinary words would match "class" for "ass").
        Runs are rare in real text, so a pass over the rules per run costs little.
        """
        found: list[Rule] = []
        for run in runs:
            for first, group in self._phrases.items():
                if first in run:
                    found += [rule for phrase, rule in group if "".join(phrase) in run]
        return found

    def match_regexes(self, normalized: str, pos: int = 0) -> list[Rule]:
        """Regex rules that match normalised text at or after ``pos`` (what comes before still counts for \\b)."""
        return [rule for compiled, rule in self._regexes if bounded_regex.search(compiled, normalized, pos)]


def verdict(matched: Sequence[Rule]) -> Verdict:
    """The first block rule and the distinct flag rules among ``matched``."""
    if not matched:
        return CLEAN
    block = next((r for r in matched if r.action == "block"), None)
    flags = tuple(dict.fromkeys(r for r in matched if r.action == "flag"))
    return Verdict(block, flags)
