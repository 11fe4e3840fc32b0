"""``continuebot prepare-model``: download or convert MODEL_NAME into MODEL_CACHE_DIR now (e.g. at image build)."""

from __future__ import annotations

import argparse
import sys

from bot.config import Settings
from bot.terminal.doctor import check_model_loads


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepare-model`` subcommand."""
    parser = subparsers.add_parser(
        "prepare-model",
        help="fetch or convert the model into the cache now, so the first start is quick",
        description="Load MODEL_NAME once (downloading or converting it into MODEL_CACHE_DIR) and exit.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Load the model once; 0 on success, 1 with the reason on failure."""
    result = check_model_loads(settings)
    print(f"{result.status}: {result.detail}", file=sys.stdout if result.status == "OK" else sys.stderr)
    return 0 if result.status == "OK" else 1
