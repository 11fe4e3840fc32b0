"""Errors of the safety filter.

    BotError (bot.errors)
    └── RuleRefused     a rule cannot be used as written (``reason`` is a sentence fit for a moderator)
        └── RuleFileError   a line of FILTER_FILE is wrong (``line`` names it)
"""

from __future__ import annotations

from bot.errors import BotError


class RuleRefused(BotError):
    """The rule is refused; ``reason`` says why in words a moderator can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RuleFileError(RuleRefused):
    """One line of the owner's FILTER_FILE is wrong."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path} line {line}: {reason}")
        self.path = path
        self.line = line
