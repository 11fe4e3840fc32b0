"""Checks a streamed output before each edit is shown: stop at the first ``block`` rule, report each ``flag`` rule once.

Only whole words are shown while streaming (the text up to its last space or punctuation), and
that is exactly the text checked, so a word that only appears once two deltas join is caught the
moment it is complete, before any edit can contain it, and a rule's word is never mistaken for the
start of a longer one. Each check costs the new text plus a short tail, not the whole output:

- the text is folded (case, accents, invisible characters) once, as it arrives;
- it is cut where nothing before can join with anything after (the start of a word of two or more
  letters); the part before the last cut is normalised and split into words once and kept;
- word rules are matched from a few words before the new ones; regexes from REGEX_WINDOW
  characters before them. The final text is checked whole (``RuleSet.check``) before it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.safety.matcher import RuleSet, Verdict, verdict
from bot.safety.normalize import fold, join_spaced, last_cut, spaced_runs, visible_end, words
from bot.safety.rules import Rule

REGEX_WINDOW = 1000  # normalised characters a regex match may reach back while streaming


@dataclass(frozen=True)
class StreamVerdict:
    """The result of checking texts about to be shown: a block, or flags not reported before."""

    block: Rule | None = None
    new_flags: tuple[Rule, ...] = ()


@dataclass
class _Text:
    """What one variant's check keeps between deltas."""

    shown: int = 0  # characters of the raw text checked (and so fit to show)
    folded: str = ""
    cut: int = 0  # position in ``folded`` up to which ``settled`` holds its normalised form
    settled: str = ""
    settled_words: list[str] = field(default_factory=list)
    words_scanned: int = 0  # len(settled_words) at the last check
    regex_scanned: int = 0  # len(settled) at the last check


@dataclass
class OutputWatch:
    """Follows one request's variants; call ``check`` with the whole texts every time they grow, before showing them."""

    rules: RuleSet
    flagged: set[str] = field(default_factory=set)
    blocked: Rule | None = None
    _texts: dict[int, _Text] = field(default_factory=dict)
    _new_flags: list[Rule] = field(default_factory=list)

    def visible(self, texts: Sequence[str]) -> list[str]:
        """The part of each text that has been checked: what an edit may show (all of it without rules)."""
        if not self.rules:
            return list(texts)
        return [text[:self._texts[i].shown] if i in self._texts else "" for i, text in enumerate(texts)]

    def check(self, texts: Sequence[str], changed: int | None = None) -> StreamVerdict:
        """Check what is new in ``texts`` (or only in ``texts[changed]``); a block sticks once found."""
        if self.blocked is None and self.rules:
            for i in range(len(texts)) if changed is None else (changed,):
                self._record(verdict(self._matches(self._texts.setdefault(i, _Text()), texts[i])))
                if self.blocked is not None:
                    break
        return StreamVerdict(self.blocked, self._take_new_flags())

    def check_final(self, texts: Sequence[str]) -> StreamVerdict:
        """Check the whole final texts at once (the tail held back while streaming, regexes of any length)."""
        if self.blocked is None:
            for text in texts:
                self._record(self.rules.check(text))
        return StreamVerdict(self.blocked, self._take_new_flags())

    def _record(self, found: Verdict) -> None:
        if found.block is not None and self.blocked is None:
            self.blocked = found.block
        for rule in found.flags:
            if rule.key not in self.flagged:
                self.flagged.add(rule.key)
                self._new_flags.append(rule)

    def _take_new_flags(self) -> tuple[Rule, ...]:
        taken, self._new_flags = tuple(self._new_flags), []
        return taken

    def _matches(self, state: _Text, raw: str) -> list[Rule]:
        end = visible_end(raw)
        if end <= state.shown:
            return []
        state.folded += fold(raw[state.shown:end])
        state.shown = end
        cut = last_cut(state.folded, state.cut)
        # A spaced-out run never crosses a cut, so the unsettled part holds every run not yet checked whole.
        runs = spaced_runs(state.folded[state.cut:])
        if cut > state.cut:
            part = join_spaced(state.folded[state.cut:cut])
            state.settled += part
            state.settled_words += words(part)
            state.cut = cut
        tail = join_spaced(state.folded[state.cut:])
        tokens = state.settled_words[max(0, state.words_scanned - self.rules.longest_phrase + 1):] + words(tail)
        regex_from = max(0, state.regex_scanned - REGEX_WINDOW)
        found = (self.rules.match_words(tokens) + self.rules.match_runs(runs)
                 + self.rules.match_regexes(state.settled + tail, regex_from))
        state.words_scanned, state.regex_scanned = len(state.settled_words), len(state.settled)
        return found
