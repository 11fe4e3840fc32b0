"""Errors of the app layer.

    BotError
    ├── ConfigError     a setting is missing or invalid (``setting`` names it); exit code 2
    │   └── InvalidSettings   every invalid setting found in one pass (``errors``)
    ├── AccessDenied    a user may not do this here (``reason`` is fit to show them)
    └── RequestRefused  the engine would not take a recorded request (``reason`` is fit to show; the
                        engine's error is the ``__cause__``); its row is already 'rejected'
"""


class BotError(Exception):
    """Base of the app layer's errors."""


class ConfigError(BotError):
    """One setting is wrong; the message is one line naming it and never its secret value."""

    def __init__(self, setting: str, message: str, fix: str | None = None) -> None:
        super().__init__(f"{setting}: {message}" + (f"; {fix}" if fix else ""))
        self.setting = setting
        self.message = message
        self.fix = fix  # what to do about it, when the message alone does not say


class InvalidSettings(ConfigError):
    """Every setting that is wrong, found in one pass over the settings (at least one)."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.setting, first.message, first.fix)
        self.errors = tuple(errors)
        self.args = ("\n".join(str(e) for e in errors),)


class AccessDenied(BotError):
    """The user may not do what they asked; ``reason`` is a human sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RequestRefused(BotError):
    """The engine refused a request after it was recorded; ``reason`` is what the row and the user get."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
