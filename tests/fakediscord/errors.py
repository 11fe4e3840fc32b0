"""Errors of the fake Discord.

FakeDiscordError
 ├── UsageError    a test asked for something Discord (or its client) would not let a user do
 ├── WaitTimeout   a wait_for... did not see its condition in time (also an AssertionError)
 └── ApiError      internal: a REST handler answers with Discord's error body and status
"""

from __future__ import annotations

from typing import Any


class FakeDiscordError(Exception):
    """Base of every error the fake Discord raises."""


class UsageError(FakeDiscordError):
    """The test drove the fake in a way a real Discord user could not."""


class WaitTimeout(FakeDiscordError, AssertionError):
    """A wait_for... helper timed out; the message says what was awaited and what was seen."""


class ApiError(FakeDiscordError):
    """Raised inside a REST handler: becomes a JSON error response like Discord's."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


def invalid_form(field: str, code: str, message: str) -> ApiError:
    """Discord's 50035 Invalid Form Body, with the offending field."""
    return ApiError(400, 50035, "Invalid Form Body", {field: {"_errors": [{"code": code, "message": message}]}})


def unknown_interaction() -> ApiError:
    return ApiError(404, 10062, "Unknown interaction")


def invalid_webhook_token() -> ApiError:
    return ApiError(401, 50027, "Invalid Webhook Token")


def unknown_message() -> ApiError:
    return ApiError(404, 10008, "Unknown Message")


def unknown_webhook() -> ApiError:
    return ApiError(404, 10015, "Unknown Webhook")


def already_acknowledged() -> ApiError:
    return ApiError(400, 40060, "Interaction has already been acknowledged.")


def missing_permissions() -> ApiError:
    return ApiError(403, 50013, "Missing Permissions")
