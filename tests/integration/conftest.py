"""Integration fixtures: a real redis-server and sandbox for the session; intake and Celery workers per test."""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from sandbox.admin import SandboxAdmin
from tests.integration.services import RedisServer, ServiceProcess, free_port, wait_until
from worker import keys

TOKEN = "it-token-0123456789abcdef"
WRITE_KEY = "it-write-key"
ADVERTISER = "7000000000000000001"
LEGACY_ADVERTISER = "7000000000000000002"
LEGACY_AUDIENCE = "2000000000000000001"

pytestmark = pytest.mark.integration


def destinations_config(**overrides: Any) -> dict[str, Any]:
    destination = {
        "id": "tiktok-main",
        "name": "TikTok Audiences",
        "access_token_env": "TIKTOK_ACCESS_TOKEN",
        "advertiser_ids": [ADVERTISER, LEGACY_ADVERTISER],
        "native": {"advertiser_id": ADVERTISER, "auto_create": True},
        "mappings": [
            {"action": "addToAudience"},
            {"action": "removeFromAudience"},
            {"action": "addUser", "subscribe": 'event = "Legacy Added"',
             "fields": {"selected_advertiser_id": LEGACY_ADVERTISER, "audience_id": LEGACY_AUDIENCE}},
            {"action": "removeUser", "subscribe": 'event = "Legacy Removed"',
             "fields": {"selected_advertiser_id": LEGACY_ADVERTISER, "audience_id": LEGACY_AUDIENCE}},
        ],
    }
    destination.update(overrides)
    return {"destinations": [destination]}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "TTA_SANDBOX_TOKENS": TOKEN, "TTA_LOG_FORMAT": "json"}
    process = ServiceProcess("sandbox", ["sandbox", "--port", str(port)], env,
                             tmp_path_factory.mktemp("sandbox")).start()
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: SandboxAdmin(url).state() is not None, 20, message="sandbox to answer")
    yield url
    process.stop()


class Stack:
    """Intake and workers of one test, pointed at the session's Redis and sandbox."""

    def __init__(self, redis_server: RedisServer, sandbox_url: str, workdir: Path) -> None:
        self.redis_server = redis_server
        self.redis = redis_server.client()
        self.sandbox = SandboxAdmin(sandbox_url)
        self.workdir = workdir
        self.config_path = workdir / "destinations.yaml"
        self.write_config(destinations_config())
        self.env = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "TIKTOK_API_BASE_URL": sandbox_url,
            "TTA_CONFIG": str(self.config_path),
            "TTA_WRITE_KEY": WRITE_KEY,
            "TIKTOK_ACCESS_TOKEN": TOKEN,
            "TTA_FLUSH_INTERVAL": "0.3",
            "TTA_RATE_LIMIT_QPS": "100",
            "TTA_BACKOFF_BASE": "0.2",
            "TTA_BACKOFF_MAX": "1",
            "TTA_THROTTLE_COOLDOWN": "0.2",
            "TTA_PAUSE_RECHECK": "0.5",
            "TTA_HTTP_TIMEOUT": "3",
            "TTA_LOG_FORMAT": "json",
            "TTA_LOG_LEVEL": "info",
        }
        self.processes: list[ServiceProcess] = []
        self.intake_url = ""

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config))

    def start_intake(self, processes: int = 1) -> None:
        for _ in range(3):  # the free port may be taken (an outgoing connection) before intake binds it
            port = free_port()
            process = ServiceProcess(f"intake-{len(self.processes)}",
                                     ["serve", "--port", str(port), "--workers", str(processes)],
                                     self.env, self.workdir).start()
            self.processes.append(process)
            self.intake_url = f"http://127.0.0.1:{port}"

            def answering_or_exited(process: ServiceProcess = process) -> str:
                if process.process is not None and process.process.poll() is not None:
                    return "exited"
                with urllib.request.urlopen(self.intake_url + "/healthz", timeout=2) as answer:
                    return "up" if answer.status == 200 else ""

            if wait_until(answering_or_exited, 20, message="intake to answer") == "up":
                return
        raise AssertionError(f"intake did not start:\n{self.logs()}")

    def start_worker(self, concurrency: int = 2, **env: str) -> ServiceProcess:
        process = ServiceProcess(f"worker-{len(self.processes)}", ["worker", f"--concurrency={concurrency}"],
                                 {**self.env, **env}, self.workdir).start()
        self.processes.append(process)
        return process

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
        request = urllib.request.Request(self.intake_url + path, data=orjson.dumps(body), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Basic {auth}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
        try:
            return status, orjson.loads(data)
        except orjson.JSONDecodeError:
            return status, data.decode(errors="replace")

    def cli(self, *args: str) -> tuple[int, str, str]:
        import subprocess
        import sys

        done = subprocess.run([sys.executable, "-m", "tiktok_audiences", *args], env=self.env,
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr

    def backlog_settled(self) -> bool:
        """Nothing pending: every accepted operation is delivered or recorded dead."""
        targets = [t.decode() if isinstance(t, bytes) else t for t in self.redis.smembers("tta:targets")]
        pending = sum(int(self.redis.get(keys.pending_count(t)) or 0) for t in targets)
        open_batches = sum(self.redis.zcard(f"tta:batches:status:{s}")
                           for s in ("pending", "delivering", "retrying", "paused"))
        return pending == 0 and open_batches == 0

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


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
