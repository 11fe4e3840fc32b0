"""Logging for the CLI and the bot: readable console lines, optional rotating file, secrets redacted."""

from __future__ import annotations

import logging
import logging.handlers
import re
from pathlib import Path

# Webhook and interaction URLs carry interaction tokens; bot tokens have three dotted parts.
_SECRET_PATTERNS = (
    re.compile(r"(/webhooks/\d+/)[A-Za-z0-9_.-]+"),
    re.compile(r"(/interactions/\d+/)[A-Za-z0-9_.-]+"),
    re.compile(r"()[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"),
)


class RedactSecrets(logging.Filter):
    """Replaces tokens and webhook tokens in a record's final message with ``[redacted]``."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(r"\1[redacted]", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


def setup_logging(level: str = "INFO", log_file: Path | None = None, secrets: tuple[str, ...] = ()) -> None:
    """Configure the root logger once for the process."""
    redact = RedactSecrets(secrets)
    formatter = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(log_file, maxBytes=10_000_000, backupCount=5, encoding="utf-8")
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(redact)
        root.addHandler(handler)
    root.setLevel(level)
    # discord.http logs full request URLs (webhook tokens) at DEBUG; keep it at INFO at most.
    logging.getLogger("discord.http").setLevel(max(logging.INFO, root.level))
    logging.getLogger("discord.gateway").setLevel(max(logging.INFO, root.level))
