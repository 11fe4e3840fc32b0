"""The owner's FILTER_FILE: one rule a line, applied in every server.

    # a comment; blank lines are skipped
    some phrase                                  a word/phrase rule: block, prompts and outputs
    flag output word: another phrase             the words before ':' set action, target and kind
    block both regex: \\bfree\\s+nitro\\b => Scam links aren't allowed here.

After `` => `` comes the public reason shown to members (never the pattern itself).
"""

from __future__ import annotations

from pathlib import Path

import regex

from bot.safety.errors import RuleFileError, RuleRefused
from bot.safety.rules import ACTIONS, APPLIES_TO, KINDS, Rule, make_rule

_KEYWORDS = "|".join((*ACTIONS, *APPLIES_TO, *KINDS))
_HEADER = regex.compile(rf"^((?:{_KEYWORDS})(?:\s+(?:{_KEYWORDS}))*)\s*:\s*(.*)$")
REASON_MARK = " => "


def load_rule_file(path: Path) -> tuple[Rule, ...]:
    """Every rule in ``path``; raises RuleFileError naming the first wrong line (or an unreadable file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(str(path), 0, f"cannot read it ({exc})") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, name: str = "FILTER_FILE") -> tuple[Rule, ...]:
    """Parse FILTER_FILE text; ``name`` appears in error messages."""
    rules = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            rules.append(parse_line(line, f"file line {number}"))
        except RuleRefused as exc:
            raise RuleFileError(name, number, exc.reason) from None
    return tuple(rules)


def parse_line(line: str, key: str) -> Rule:
    """One rule from one non-comment line."""
    reason = None
    if REASON_MARK in line:
        line, reason = line.rsplit(REASON_MARK, 1)
    settings = {"action": "block", "applies_to": "both", "kind": "word"}
    header = _HEADER.match(line)
    if header:
        seen: set[str] = set()
        for word in header.group(1).split():
            slot = "action" if word in ACTIONS else "applies_to" if word in APPLIES_TO else "kind"
            if slot in seen:
                raise RuleRefused(f"{slot.replace('_', ' ')} is given twice")
            seen.add(slot)
            settings[slot] = word
        line = header.group(2)
    return make_rule(key, settings["kind"], line, applies_to=settings["applies_to"],
                     action=settings["action"], reason=reason)
