"""Fixtures for the sandbox tests: one sandbox per session on a free port, reset before every test."""

from __future__ import annotations

import pytest

from sandbox import SandboxThread
from tests.support.sandbox import ADVERTISER, Api


@pytest.fixture
def api(sandbox_server: SandboxThread) -> Api:
    client = Api(sandbox_server.base_url)
    client.admin.reset()
    return client


@pytest.fixture
def audience(api: Api) -> str:
    """A fresh audience of the default advertiser, seeded through the admin API."""
    return api.admin.seed_audience(ADVERTISER, "test audience")
