"""The tree passes ruff (configured in pyproject.toml): lint failures fail the suite like any test."""

import subprocess
import sys
from pathlib import Path


def test_ruff_is_clean() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "."], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
