"""Redis out of memory (maxmemory with noeviction) is a condition, not a crash: a real redis-server with a small
maxmemory, filled up while events wait; the worker stays up and says so once, intake and /readyz answer 503
naming the cause, `stats` warns, and delivery resumes with no restart once memory frees up."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.events import email_member, engage, post_all, wait_until
from tests.support.stack import ADVERTISER, Stack
from tiktok_audiences.local_stack import RedisServer

pytestmark = pytest.mark.integration

AUDIENCE = "3000000000000000001"


class SmallRedis(RedisServer):
    def start(self) -> None:
        assert self.binary
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"),
             "--maxmemory", "40mb", "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_until(lambda: client.ping(), 10, message="redis-server to answer")


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[SmallRedis]:
    server = SmallRedis(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    server.start()
    yield server
    server.stop()


def fill_up(client: redis.Redis) -> int:
    """Write ballast until Redis refuses; returns how many ballast keys it took."""
    count = 0
    try:
        while True:
            client.set(f"ballast:{count}", b"x" * 100_000)
            count += 1
    except redis.exceptions.OutOfMemoryError:
        return count


def get(url: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_a_full_redis_is_survived_and_delivery_resumes_without_restart(
        small_redis: SmallRedis, sandbox_url: str, tmp_path: Path) -> None:
    stack = Stack(small_redis, sandbox_url, tmp_path)
    try:
        stack.sandbox.reset()
        stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="full", audience_id=AUDIENCE)
        stack.start_intake()
        post_all(stack, [engage("Audience Entered", i, AUDIENCE) for i in range(50)])
        client = small_redis.client()
        ballast = fill_up(client)
        assert ballast > 0

        worker = stack.start_worker()
        time.sleep(20)  # scheduler ticks, drains, late acks, consumer restarts: all refused for lack of memory
        assert worker.process is not None and worker.process.poll() is None, worker.tail(80)

        status, body, _ = get(stack.intake_url + "/readyz")
        assert status == 503 and body["code"] == "store_out_of_memory", body
        assert "maxmemory" in body["message"]
        status, answer = stack.post("/v1/batch", {"batch": [engage("Audience Entered", 99, AUDIENCE)]})
        assert status == 503 and answer["code"] == "store_out_of_memory", answer
        code, out, err = stack.cli("stats")
        assert code == 0 and "WARNING: Redis is out of memory" in out, out + err

        client.delete(*[f"ballast:{i}" for i in range(ballast)])
        wait_until(stack.backlog_settled, 90, message=f"delivery after memory freed\n{stack.logs()}")
        assert set(stack.sandbox.members(AUDIENCE)) >= {email_member(i) for i in range(50)}
        assert worker.process.poll() is None  # the same worker process delivered: no restart
        assert get(stack.intake_url + "/readyz")[0] == 200

        lines = [json.loads(line) for line in worker.log_path.read_text().splitlines() if line.startswith("{")]
        episodes = [r for r in lines if r.get("event") == "redis_out_of_memory"]
        # Once per process per episode (the scheduler and each pool process), not once per refused write.
        assert 1 <= len(episodes) <= 4, episodes
        assert "Unrecoverable error" not in worker.log_path.read_text()
        # Celery's consumer retried in a tight loop before, logging "Cannot connect" ~5 times a second.
        assert sum("Cannot connect" in r["event"] for r in lines) <= 2
    finally:
        stack.stop()
