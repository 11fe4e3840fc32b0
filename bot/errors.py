"""Errors of the app layer.

    BotError
    ├── ConfigError     a setting is missing or invalid (``setting`` names it); exit code 2
    ├── AccessDenied    a user may not do this here (``reason`` is fit to show them)
    └── RequestRefused  the engine would not take a recorded request (``reason`` is fit to show; the
                        engine's error is the ``__cause__``); its row is already 'rejected'
"""


class BotError(Exception):
    """Base of the app layer's errors."""


class ConfigError(BotError):
    """One setting is wrong; the message is one line naming it and never its secret value."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


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
