"""``continuebot`` answers a bad argument at once: nothing heavy is imported before the arguments parse."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bot.cli import SUBCOMMANDS

PROBE = """
import json, sys
from bot.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    heavy = sorted(m for m in ("torch", "transformers", "discord") if m in sys.modules)
    print(json.dumps({"code": exc.code, "heavy": heavy}))
"""


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_a_bad_argument_is_refused_before_any_heavy_import(command, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, command, "--no-such-option"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 2 and "error:" in proc.stderr
    assert result["heavy"] == [], f"imported before the arguments were checked: {result['heavy']}"
