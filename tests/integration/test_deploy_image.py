"""The image's install steps, replayed without Docker: the lock files install with hash checking into fresh
environments, the project builds with the pinned setuptools, and the installed command runs every role's
entry point. (Docker itself is not needed; the Dockerfile's static checks are in tests/unit/deploy.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv") or str(Path(sys.executable).parent / "uv")


def run(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.skipif(not Path(UV).exists(), reason="uv is not installed (dev extra)")
def test_the_locked_dependencies_and_the_project_install_as_the_image_installs_them(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("core", "producer", "worker", "sandbox", "tiktok_audiences"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    builder, app = tmp_path / "builder", tmp_path / "app"
    for venv in (builder, app):
        run(UV, "venv", "-q", "--seed", "-p", sys.executable, str(venv))
    run(UV, "pip", "install", "-q", "--python", str(app / "bin" / "python"), "--require-hashes", "--no-deps",
        "-r", str(ROOT / "deploy" / "requirements.lock"))
    run(UV, "pip", "install", "-q", "--python", str(builder / "bin" / "python"), "--require-hashes", "--no-deps",
        "-r", str(ROOT / "deploy" / "build-requirements.lock"))
    run(str(builder / "bin" / "python"), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "--wheel-dir", str(tmp_path / "wheels"), str(source))
    [wheel] = (tmp_path / "wheels").glob("*.whl")
    run(UV, "pip", "install", "-q", "--python", str(app / "bin" / "python"), "--no-deps", str(wheel))
    # Every role's module imports with the locked versions alone, outside the repository.
    run(str(app / "bin" / "python"), "-c", "import producer.http, worker.tasks, worker.runner, sandbox.server, "
        "tiktok_audiences.cli, flower", cwd=tmp_path)
    for role in ("serve", "worker", "scheduler", "sandbox"):
        assert "usage:" in run(str(app / "bin" / "tiktok-audiences"), role, "--help", cwd=tmp_path)
