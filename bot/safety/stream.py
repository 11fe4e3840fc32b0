"""Checks a streamed output before each edit is shown: stop at the first ``block`` rule, report each ``flag`` rule once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.safety.matcher import RuleSet
from bot.safety.rules import Rule


@dataclass(frozen=True)
class StreamVerdict:
    """The result of checking texts about to be shown: a block, or flags not reported before."""

    block: Rule | None = None
    new_flags: tuple[Rule, ...] = ()


@dataclass
class OutputWatch:
    """Follows one request's variants; call ``check`` with the whole texts every time they grow, before showing them.

    The whole text is checked every time (not only the newest delta), so a word that only appears
    once two deltas join is caught the moment it is complete, before any edit can contain it.
    """

    rules: RuleSet
    flagged: set[str] = field(default_factory=set)
    blocked: Rule | None = None

    def check(self, texts: Sequence[str], changed: int | None = None) -> StreamVerdict:
        """Check ``texts`` (or only ``texts[changed]``, the one that grew); a block sticks once found."""
        if self.blocked is not None:
            return StreamVerdict(self.blocked)
        if not self.rules:
            return StreamVerdict()
        indexes = range(len(texts)) if changed is None else (changed,)
        new_flags: list[Rule] = []
        for i in indexes:
            verdict = self.rules.check(texts[i])
            if verdict.block is not None:
                self.blocked = verdict.block
                return StreamVerdict(verdict.block, tuple(new_flags))
            for rule in verdict.flags:
                if rule.key not in self.flagged:
                    self.flagged.add(rule.key)
                    new_flags.append(rule)
        return StreamVerdict(None, tuple(new_flags))
