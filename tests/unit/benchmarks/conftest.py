"""Fixtures for the benchmark pieces: the sandbox TikTok API on a free port, reset for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox import SandboxThread
from sandbox.admin import SandboxAdmin


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxThread]:
    with SandboxThread() as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxThread) -> SandboxAdmin:
    admin = sandbox_server.admin
    admin.reset()
    return admin
