"""Running promtool where it is installed (deploy/ensure-promtool.sh puts it on PATH); tests skip elsewhere."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (deploy/ensure-promtool.sh installs it)")
    return subprocess.run([binary, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)
