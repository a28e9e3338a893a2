"""The local stack behind ``run``, the benchmarks and the integration tests: services started in sessions of
their own, waited for, and stopped with everything they started."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from core.destinations import load_destinations
from tiktok_audiences import local_stack
from tiktok_audiences.local_stack import (
    SANDBOX_ADVERTISER,
    SANDBOX_DESTINATION,
    SANDBOX_TOKEN,
    LocalStack,
    ServiceProcess,
    StackError,
    sandbox_destinations,
    wait_for,
)

# A service that starts a child of its own (as intake forks servers and a worker its pool), then waits.
SERVICE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("child", child.pid, flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def service_module(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "tta_test_service.py").write_text(SERVICE)
    (tmp_path / "tta_test_exits.py").write_text("import sys; print('bad config'); sys.exit(3)\n")
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_wait_for_returns_the_first_true_value_and_takes_exceptions_for_not_yet() -> None:
    answers = iter([ConnectionError("not listening"), None, "up"])

    def probe() -> str | None:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for(probe, 5, "the probe") == "up"


def test_wait_for_names_what_did_not_come_up() -> None:
    with pytest.raises(StackError, match="the thing did not come up within 0s"):
        wait_for(lambda: False, 0.2, "the thing")


def test_stopping_a_service_stops_the_children_it_started(tmp_path: Path, service_module: dict[str, str]) -> None:
    service = ServiceProcess("svc", [], service_module, tmp_path, module="tta_test_service").start()
    child = int(wait_for(lambda: service.log_path.read_text().split()[1], 10, "the service's child"))
    assert alive(child)

    service.stop()

    assert service.exited()
    wait_for(lambda: not alive(child), 5, "the child to stop")


def test_a_service_that_exits_on_its_own_is_reported_with_its_log(tmp_path: Path,
                                                                  service_module: dict[str, str]) -> None:
    service = ServiceProcess("svc", [], service_module, tmp_path, module="tta_test_exits").start()
    wait_for(service.exited, 10, "the service to exit")

    with pytest.raises(StackError, match=r"svc exited with code 3; see .*svc\.log"):
        service.check()
    assert service.tail() == "bad config"


def test_a_stack_stops_its_processes_together(tmp_path: Path, service_module: dict[str, str]) -> None:
    stack = LocalStack(tmp_path, service_module)
    first = stack.start("one", module="tta_test_service")
    second = stack.start("two", module="tta_test_service")
    stack.check()

    started = time.monotonic()
    stack.stop()

    assert first.exited() and second.exited() and stack.processes == []
    assert time.monotonic() - started < 10
    assert first.process is not None and first.process.returncode == -signal.SIGTERM


def test_without_redis_server_a_demo_gets_a_fake_redis_and_a_benchmark_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_stack.shutil, "which", lambda name: None)
    with LocalStack(tmp_path, {}) as stack:
        url = stack.start_redis(allow_fake=True)
        assert stack.env["REDIS_URL"] == url and stack.redis_server is None
        client = local_stack.redis_from_url(url, local_stack.LOCAL)
        assert client.ping()
        client.close()

    with pytest.raises(StackError, match="redis-server is not on PATH"):
        LocalStack(tmp_path, {}).start_redis()


def test_the_sandbox_destinations_file_names_the_sandbox_advertiser(tmp_path: Path) -> None:
    sandbox_destinations(tmp_path / "destinations.yaml")

    (destination,) = load_destinations(tmp_path / "destinations.yaml").destinations
    assert destination.id == SANDBOX_DESTINATION
    assert destination.advertiser_ids == [SANDBOX_ADVERTISER]


def test_using_the_sandbox_points_the_next_commands_at_it(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path, {})
    stack.sandbox_url = "http://127.0.0.1:9"
    stack.use_sandbox()

    assert stack.env == {"TIKTOK_API_BASE_URL": "http://127.0.0.1:9", "TIKTOK_ACCESS_TOKEN": SANDBOX_TOKEN,
                         "TTA_CONFIG": str(tmp_path / "destinations.yaml")}
    assert (tmp_path / "destinations.yaml").exists()

