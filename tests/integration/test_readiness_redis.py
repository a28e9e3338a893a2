"""The write-path probe against real Redis servers that answer PING but would refuse an enqueue."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.events import wait_until
from tiktok_audiences.local_stack import RedisServer, free_port
from worker.readiness import check_write_path

pytestmark = pytest.mark.integration


def started(workdir: Path, *args: str) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    port = free_port()
    # A cluster node also listens on its port + 10,000 (the cluster bus): a port above 55,535 has no bus port
    # and the node exits at once.
    while "--cluster-enabled" in args and port > 55_535:
        port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(workdir), *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    wait_until(client.ping, 10, message="redis-server to answer")
    return process, client


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    running: list[subprocess.Popen[bytes]] = []
    yield running
    for process in running:
        process.terminate()
        process.wait(10)


def test_a_master_is_ready(redis_server: RedisServer) -> None:
    assert check_write_path(redis_server.client()) is None


def test_a_replica_is_not(redis_server: RedisServer, tmp_path: Path,
                          processes: list[subprocess.Popen[bytes]]) -> None:
    process, client = started(tmp_path, "--replicaof", "127.0.0.1", str(redis_server.port))
    processes.append(process)
    assert "read only replica" in (check_write_path(client) or "")


def test_a_cluster_node_is_not_even_when_it_serves_every_slot(tmp_path: Path,
                                                              processes: list[subprocess.Popen[bytes]]) -> None:
    process, client = started(tmp_path, "--cluster-enabled", "yes", "--cluster-config-file",
                              str(tmp_path / "nodes.conf"))
    processes.append(process)
    client.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
    wait_until(lambda: b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"), 10,
               message="the one-node cluster to be up")
    assert "hash to the same slot" in (check_write_path(client) or "")


def test_a_full_redis_under_noeviction_is_not(tmp_path: Path, processes: list[subprocess.Popen[bytes]]) -> None:
    process, client = started(tmp_path, "--maxmemory-policy", "noeviction")
    processes.append(process)
    client.set("ballast", "x" * 100_000)
    client.config_set("maxmemory", "1")
    time.sleep(0.1)
    assert "maxmemory" in (check_write_path(client) or "")
