"""Integration fixtures: a real redis-server and sandbox for the session; intake and Celery workers per test
(tests/support/stack.py)."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.admin import SandboxAdmin
from tests.support.stack import LEGACY_ADVERTISER, LEGACY_AUDIENCE, TOKEN, Stack
from tiktok_audiences.local_stack import LocalStack, RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LocalStack(tmp_path_factory.mktemp("sandbox"), {**os.environ, "TTA_LOG_FORMAT": "json"}) as services:
        yield services.start_sandbox(tokens=TOKEN)


@pytest.fixture
def stack(redis_server: RedisServer, sandbox_url: str, tmp_path: Path,
          request: pytest.FixtureRequest) -> Iterator[Stack]:
    redis_server.client().flushall()
    SandboxAdmin(sandbox_url).reset()
    SandboxAdmin(sandbox_url).seed_audience(advertiser_id=LEGACY_ADVERTISER, name="legacy",
                                            audience_id=LEGACY_AUDIENCE)
    stack = Stack(redis_server, sandbox_url, tmp_path)
    yield stack
    stack.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(stack.logs())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
