"""The filter rules in force: the owner's FILTER_FILE for every server plus each server's own, compiled and cached."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.safety.matcher import RuleSet, Verdict
from bot.safety.rules import Rule, make_rule
from bot.safety.stream import OutputWatch
from storage import FilterRuleRow, Store

log = logging.getLogger(__name__)


def rule_from_row(row: FilterRuleRow) -> Rule:
    """A stored rule as the matcher uses it (``rule 12``)."""
    return Rule(f"rule {row.id}", row.kind, row.pattern, row.applies_to, row.action,  # type: ignore[arg-type]
                row.reason, row.guild_id)


@dataclass
class Filters:
    """Checks prompts and starts output watches for a guild; adds and removes a guild's rules.

    Compiled rule sets are kept per guild and rebuilt after this process changes that guild's rules.
    """

    store: Store
    file_rules: tuple[Rule, ...] = ()
    _compiled: dict[int | None, tuple[RuleSet, RuleSet]] = field(default_factory=dict)

    async def _rule_sets(self, guild_id: int | None) -> tuple[RuleSet, RuleSet]:
        cached = self._compiled.get(guild_id)
        if cached is None:
            rules = [*self.file_rules, *(await self.guild_rules(guild_id))]
            cached = RuleSet(rules, "prompt"), RuleSet(rules, "output")
            self._compiled[guild_id] = cached
        return cached

    async def guild_rules(self, guild_id: int | None) -> list[Rule]:
        """A guild's own rules (none outside a guild)."""
        if guild_id is None:
            return []
        return [rule_from_row(row) for row in await self.store.filter_rules(guild_id)]

    async def check_prompt(self, guild_id: int | None, prompt: str) -> Verdict:
        """Which rules the prompt matches."""
        prompts, _ = await self._rule_sets(guild_id)
        return prompts.check(prompt)

    async def watch(self, guild_id: int | None) -> OutputWatch | None:
        """A fresh watch over one request's outputs; None when no rule applies to outputs here."""
        _, outputs = await self._rule_sets(guild_id)
        return OutputWatch(outputs) if outputs else None

    async def add(
        self, guild_id: int, *, kind: str, pattern: str, applies_to: str, action: str, reason: str | None,
        created_by: int,
    ) -> Rule:
        """Check a rule (RuleRefused says why not), save it, and use it from the next request on."""
        checked = make_rule("new", kind, pattern, applies_to=applies_to, action=action, reason=reason,
                            guild_id=guild_id)
        rule_id = await self.store.add_filter_rule(
            guild_id, kind=checked.kind, pattern=checked.pattern, applies_to=checked.applies_to,
            action=checked.action, reason=checked.reason, created_by=created_by,
        )
        self._compiled.pop(guild_id, None)
        log.info("filter rule %d added in guild %s (%s %s, %s)", rule_id, guild_id, checked.action, checked.kind,
                 checked.applies_to)
        return Rule(f"rule {rule_id}", checked.kind, checked.pattern, checked.applies_to, checked.action,
                    checked.reason, guild_id)

    async def remove(self, guild_id: int, rule_id: int) -> Rule | None:
        """Delete one of the guild's rules; None when it has no such rule."""
        row = await self.store.remove_filter_rule(guild_id, rule_id)
        self._compiled.pop(guild_id, None)
        return rule_from_row(row) if row else None
