"""``continuebot invite``: prints the OAuth2 URL that adds the bot to a server."""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from urllib.parse import urlencode

from bot.config import Settings
from bot.errors import ConfigError
from bot.permissions import OAUTH_SCOPES, required_permissions

AUTHORIZE_URL = "https://discord.com/oauth2/authorize"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``invite`` subcommand."""
    parser = subparsers.add_parser(
        "invite",
        help="print the link that adds the bot to a server",
        description="Print the OAuth2 URL with the scopes and the permissions the bot needs.",
    )
    parser.add_argument(
        "--client-id",
        help="the application id (Developer Portal > General Information); default: read from DISCORD_TOKEN",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the invite URL; exit 2 when no client id can be found."""
    try:
        if args.client_id:
            client_id = parse_client_id(args.client_id)
        else:
            client_id = client_id_from_token(settings.discord_token)
    except ConfigError as exc:
        print(f"continuebot: {exc}", file=sys.stderr)
        return 2
    print(invite_url(client_id))
    return 0


def invite_url(client_id: int) -> str:
    """The OAuth2 authorize URL for ``client_id`` with the bot's scopes and permissions."""
    query = urlencode(
        {"client_id": client_id, "scope": " ".join(OAUTH_SCOPES), "permissions": required_permissions().value}
    )
    return f"{AUTHORIZE_URL}?{query}"


def parse_client_id(text: str) -> int:
    """A numeric application id, or a ConfigError."""
    if not text.strip().isdigit():
        raise ConfigError("--client-id", f"must be the numeric application id, got {text!r}")
    return int(text)


def client_id_from_token(token: str | None) -> int:
    """The bot's user id (equal to its application id), read from the token's first part."""
    if not token:
        raise ConfigError(
            "DISCORD_TOKEN",
            "is not set; pass --client-id (Developer Portal > General Information > Application ID)",
        )
    first = token.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if not decoded.isdigit():
        raise ConfigError(
            "DISCORD_TOKEN",
            "does not start with an encoded application id; pass --client-id instead",
        )
    return int(decoded)
