"""The ``continuebot`` command line: parses arguments, loads settings once, dispatches."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import load_settings
from bot.errors import ConfigError

log = logging.getLogger(__name__)

# subcommand -> module exposing register(subparsers) and run(args, settings) -> int
SUBCOMMANDS = {
    "run": "bot.runner",
    "generate": "bot.generate_cli",
    "logs": "bot.logs_cli",
    "doctor": "bot.doctor",
    "invite": "bot.invite",
    "prepare-model": "bot.prepare_model",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="continuebot", description="A Discord bot that continues your text with a local language model."
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="settings file (default: .env)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = None
    # A subcommand that reports bad settings itself (doctor) sets needs_settings=False.
    try:
        if getattr(args, "needs_settings", True):
            settings = load_settings(env_file=args.env_file)
    except ConfigError as exc:
        print(f"continuebot: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"continuebot: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
