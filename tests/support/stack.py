"""The stack of one integration test: intake and Celery workers (a :class:`LocalStack`), pointed at the
session's redis-server and sandbox, with the destinations file, write key and fast timings the tests use."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

from sandbox.admin import SandboxAdmin
from tiktok_audiences.local_stack import LocalStack, RedisServer, ServiceProcess
from worker import keys

TOKEN = "it-token-0123456789abcdef"
WRITE_KEY = "it-write-key"
ADVERTISER = "7000000000000000001"
LEGACY_ADVERTISER = "7000000000000000002"
LEGACY_AUDIENCE = "2000000000000000001"
OPEN_STATUSES = ("pending", "delivering", "retrying", "paused")


def destinations_config(**overrides: Any) -> dict[str, Any]:
    """One destination for both advertisers: native Engage audiences under ``ADVERTISER`` (created as needed),
    and legacy add/remove events into ``LEGACY_AUDIENCE`` of ``LEGACY_ADVERTISER``."""
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


class Stack:
    """Intake and workers of one test, pointed at the session's Redis and sandbox.

    ``env`` is what the next command starts with: a test changes it (a setting, another Redis) before starting
    intake or a worker."""

    def __init__(self, redis_server: RedisServer, sandbox_url: str, workdir: Path) -> None:
        self.redis_server = redis_server
        self.redis = redis_server.client()
        self.sandbox = SandboxAdmin(sandbox_url)
        self.workdir = workdir
        self.config_path = workdir / "destinations.yaml"
        self.write_config(destinations_config())
        self.local = LocalStack(workdir, {
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
        })

    @property
    def env(self) -> dict[str, str]:
        return self.local.env

    @property
    def processes(self) -> list[ServiceProcess]:
        """Intake and workers in the order started; a process appended here is stopped with the stack."""
        return self.local.processes

    @property
    def intake_url(self) -> str:
        return self.local.intake_url

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config))

    def start_intake(self, processes: int = 1) -> ServiceProcess:
        return self.local.start_intake(processes=processes, name=f"intake-{len(self.processes)}")

    def start_worker(self, concurrency: int = 2, **env: str) -> ServiceProcess:
        return self.local.start_worker(concurrency, name=f"worker-{len(self.processes)}", **env)

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        """POST ``body`` as JSON to intake with the write key; the answer's status and its JSON (or text)."""
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
        """One ``tiktok-audiences`` command in this stack's environment: exit code, stdout, stderr."""
        done = subprocess.run([sys.executable, "-m", "tiktok_audiences", *args], env=self.env,
                              capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr

    def backlog_settled(self) -> bool:
        """Nothing pending: every accepted operation is delivered or recorded dead."""
        targets = [t.decode() if isinstance(t, bytes) else t for t in self.redis.smembers("tta:targets")]
        pending = sum(int(self.redis.get(keys.pending_count(t)) or 0) for t in targets)
        open_batches = sum(self.redis.zcard(f"tta:batches:status:{s}") for s in OPEN_STATUSES)
        return pending == 0 and open_batches == 0

    def logs(self) -> str:
        return self.local.logs()

    def stop(self) -> None:
        self.local.stop()
