"""Fixtures every unit-test folder may ask for: the sandbox TikTok API on a free port, one per session (started
only when a test asks for it), reset before each test that takes ``sandbox``."""

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
