"""The code base passes ruff (configured in pyproject.toml)."""

import subprocess
import sys

from conftest import REPO


def test_ruff_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
