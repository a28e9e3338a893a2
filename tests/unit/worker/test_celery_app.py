"""The Celery app exists only once a command makes it from its Settings, and its tasks run with those Settings,
whatever the environment says."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import fakeredis
import pytest
from celery import Celery

from core.redis_client import Role
from core.settings import Settings
from worker import shutdown
from worker.celery_app import make_celery
from worker.tasks import CREATE_TASK, DRAIN_TASK


def test_importing_the_worker_makes_no_celery_app() -> None:
    probe = ("import worker.celery_app, worker.tasks, worker.runner; from celery import _state; "
             "print(len(list(_state._get_active_apps())))")
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "0"


def test_the_factory_registers_both_tasks_on_each_app_it_makes() -> None:
    first = make_celery(Settings(REDIS_URL="redis://first:6379/1"))
    second = make_celery(Settings(REDIS_URL="redis://second:6379/2"))
    for app in (first, second):
        assert {DRAIN_TASK, CREATE_TASK} <= set(app.tasks)
    assert first.tasks[DRAIN_TASK] is not second.tasks[DRAIN_TASK]
    assert first.runtime.settings is first.settings and second.runtime.settings is second.settings


def test_other_celery_apps_of_the_process_do_not_get_the_tasks() -> None:
    make_celery(Settings())
    other = Celery("someone-else")
    other.finalize()
    assert DRAIN_TASK not in other.tasks and CREATE_TASK not in other.tasks


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The Redis URLs a task process connects to (each answered by fakeredis); the test process keeps its own
    garbage collector settings and SIGTERM handler."""
    urls: list[str] = []

    def connect(url: str, role: Role) -> fakeredis.FakeRedis:
        urls.append(url)
        return fakeredis.FakeRedis()

    monkeypatch.setattr("worker.context.redis_from_url", connect)
    monkeypatch.setattr("worker.tasks.settle_heap", lambda: None)
    monkeypatch.setattr(shutdown, "stop_on_sigterm", lambda: None)
    yield urls


def test_a_task_runs_with_the_settings_of_its_app_not_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                                         connections: list[str]) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://from-the-environment:6379/0")
    settings = Settings(REDIS_URL="redis://from-the-command:6379/3", TTA_CONFIG="/nonexistent/destinations.yaml")
    app = make_celery(settings)
    try:
        assert app.tasks[CREATE_TASK]() == 0  # an empty createAudience stream
        _, ctx = app.runtime.get()
        assert ctx.settings is settings
        assert connections == ["redis://from-the-command:6379/3"]
    finally:
        app.runtime.close()
