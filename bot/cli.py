"""The ``continuebot`` command line: parses arguments, loads settings once, dispatches."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import load_settings
from bot.errors import ConfigError, InvalidSettings

log = logging.getLogger(__name__)

# subcommand -> (module exposing register(subparsers) and run(args, settings) -> int, one-line help)
SUBCOMMANDS = {
    "run": ("bot.runner", "run the Discord bot (needs DISCORD_TOKEN)"),
    "generate": ("bot.terminal.generate_cli", "continue a text in the terminal, through the same engine and log"),
    "logs": ("bot.terminal.logs_cli", "review, search, export and prune the request log"),
    "doctor": ("bot.terminal.doctor", "check settings, model, device, database and disk; say how to fix"),
    "invite": ("bot.terminal.invite", "print the URL that adds the bot to a server"),
    "prepare-model": ("bot.terminal.prepare_model", "download or convert the model into MODEL_CACHE_DIR"),
}


def _chosen(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if arg in SUBCOMMANDS), None)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser; only the chosen subcommand's module is imported (torch is slow to load)."""
    parser = argparse.ArgumentParser(
        prog="continuebot", description="A Discord bot that continues your text with a local language model."
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="settings file (default: .env)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen(argv)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name == chosen:
            importlib.import_module(module_name).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    settings = None
    # A subcommand that reports bad settings itself (doctor) sets needs_settings=False.
    try:
        if getattr(args, "needs_settings", True):
            settings = load_settings(env_file=args.env_file)
    except InvalidSettings as invalid:
        for error in invalid.errors:
            print(f"continuebot: configuration error: {error}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"continuebot: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
