"""The repository itself: scripts keep their run bit, the package has no import cycle, planning stays torch-free."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_shell_scripts_keep_their_run_bit():
    scripts = sorted((ROOT / "bench").glob("*.sh"))
    assert scripts, "bench/gpu.sh is there"
    modes = subprocess.run(["git", "ls-files", "-s", *map(str, scripts)], cwd=ROOT, capture_output=True, text=True)
    if modes.returncode == 0 and modes.stdout:   # in a checkout: the mode git keeps, which a clone gets
        assert all(line.startswith("100755") for line in modes.stdout.splitlines()), modes.stdout
    assert all(os.access(s, os.X_OK) for s in scripts)
