"""What a filter rule is, and how one is checked and built from a moderator's words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from bot.safety.bounded_regex import check_regex
from bot.safety.errors import RuleRefused
from bot.safety.normalize import normalize, words

Kind = Literal["word", "regex"]
AppliesTo = Literal["prompt", "output", "both"]
Action = Literal["block", "flag"]
KINDS: tuple[str, ...] = get_args(Kind)
APPLIES_TO: tuple[str, ...] = get_args(AppliesTo)
ACTIONS: tuple[str, ...] = get_args(Action)

MAX_PATTERN_CHARS = 200
MAX_REASON_CHARS = 200
DEFAULT_REASON = "it goes against this server's rules"


@dataclass(frozen=True)
class Rule:
    """One rule. ``key`` names it in logs and reports: ``rule 12`` (a server's) or ``file line 3`` (the owner's)."""

    key: str
    kind: Kind
    pattern: str
    applies_to: AppliesTo = "both"
    action: Action = "block"
    reason: str = DEFAULT_REASON  # public: shown to members; never the pattern itself
    guild_id: int | None = None  # None: every server (FILTER_FILE)

    def applies(self, what: Literal["prompt", "output"]) -> bool:
        """True when this rule checks prompts (``what='prompt'``) or outputs."""
        return self.applies_to in ("both", what)


def make_rule(
    key: str, kind: str, pattern: str, *, applies_to: str = "both", action: str = "block",
    reason: str | None = None, guild_id: int | None = None,
) -> Rule:
    """A validated Rule; raises RuleRefused with a clear reason when it cannot be used as written."""
    if kind not in KINDS:
        raise RuleRefused(f"the kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if applies_to not in APPLIES_TO:
        raise RuleRefused(f"it must apply to one of {', '.join(APPLIES_TO)}, not {applies_to!r}")
    if action not in ACTIONS:
        raise RuleRefused(f"the action must be one of {', '.join(ACTIONS)}, not {action!r}")
    pattern = pattern.strip()
    if not pattern:
        raise RuleRefused("the pattern is empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise RuleRefused(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    if kind == "word" and not words(normalize(pattern)):
        raise RuleRefused("a word rule needs at least one letter or digit")
    if kind == "regex":
        check_regex(pattern)
    reason = " ".join((reason or "").split()) or DEFAULT_REASON
    if len(reason) > MAX_REASON_CHARS:
        raise RuleRefused(f"the reason is longer than {MAX_REASON_CHARS} characters")
    return Rule(key, kind, pattern, applies_to, action, reason, guild_id)  # type: ignore[arg-type]
