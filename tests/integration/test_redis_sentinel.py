"""Redis high availability: intake, workers and the broker reach Redis through Sentinel, and a master that
dies mid-stream is replaced without losing or misordering an update."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.events import Events, settle, wait_until
from tests.support.stack import Stack
from tiktok_audiences.local_stack import free_port

pytestmark = pytest.mark.integration

SERVICE = "tta"


class SentinelSet:
    """One master, one replica and one sentinel, on free ports of this machine."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.binary = shutil.which("redis-server") or "redis-server"
        self.master_port, self.replica_port, self.sentinel_port = free_port(), free_port(), free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def _redis(self, name: str, port: int, *extra: str) -> None:
        directory = self.workdir / name
        directory.mkdir(exist_ok=True)
        self.processes[name] = subprocess.Popen(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--dir", str(directory), "--logfile", str(directory / "log"), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> SentinelSet:
        self._redis("master", self.master_port)
        self._redis("replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        wait_until(lambda: redis.Redis(port=self.replica_port).info("replication")["master_link_status"] == "up",
                   20, message="the replica to follow the master")
        config = self.workdir / "sentinel.conf"
        config.write_text(f"port {self.sentinel_port}\nbind 127.0.0.1\n"
                          f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 1\n"
                          f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                          f"sentinel failover-timeout {SERVICE} 10000\n")
        self.processes["sentinel"] = subprocess.Popen(
            [self.binary, str(config), "--sentinel", "--logfile", str(self.workdir / "sentinel.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.master() == self.master_port, 20, message="the sentinel to know the master")
        wait_until(lambda: self.sentinel().sentinel_slaves(SERVICE), 20, message="the sentinel to see the replica")
        return self

    def sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinel_port, socket_timeout=2)

    def master(self) -> int:
        return int(self.sentinel().sentinel_get_master_addr_by_name(SERVICE)[1])

    @property
    def url(self) -> str:
        return f"sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def kill_master(self) -> None:
        # Replication is asynchronous: a master killed outright may take its last writes with it. Wait until
        # the replica has everything written so far (WAIT), as min-replicas-to-write would, then kill.
        redis.Redis(port=self.master_port).execute_command("WAIT", 1, 2000)
        self.processes["master"].send_signal(signal.SIGKILL)
        self.processes["master"].wait(10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
                process.wait(10)


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    found = SentinelSet(tmp_path).start()
    yield found
    found.stop()


def test_a_master_killed_mid_stream_is_replaced_and_membership_ends_exact(stack: Stack,
                                                                          sentinel_set: SentinelSet) -> None:
    stack.redis = redis.Redis(port=sentinel_set.master_port)  # for the test's own looks, until the failover
    stack.env.update(REDIS_URL=sentinel_set.url, TTA_BROKER_URL=sentinel_set.url)
    events = Events(stack, audiences=3)
    stack.start_intake()
    stack.start_worker()
    status, _ = stack.post("/v1/batch", {"batch": []})
    assert status == 200
    code, _, err = stack.cli("stats", "--json")  # operators reach Redis through the sentinel too
    assert code == 0, err

    for wave in range(4):
        events.post(events.wave(wave))
    sentinel_set.kill_master()
    killed = time.monotonic()
    for wave in range(4, 10):  # intake answers 503 until the sentinel promotes the replica; the sender retries
        events.post(events.wave(wave))
    wait_until(lambda: sentinel_set.master() == sentinel_set.replica_port, 30, message="the failover")
    took = time.monotonic() - killed
    stack.redis = redis.Redis(port=sentinel_set.replica_port)
    settle(stack, timeout=120)
    events.assert_delivered_exactly()
    assert redis.Redis(port=sentinel_set.replica_port).info("replication")["role"] == "master"
    print(f"failover and recovery within {took:.1f} s of the kill")
