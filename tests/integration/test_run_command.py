"""``tiktok-audiences run``: the whole service as one command, which takes its processes with it when it stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.events import wait_until
from tiktok_audiences.local_stack import free_port

pytestmark = pytest.mark.integration


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has stopped; only its parent has not collected it yet


def test_run_stops_every_process_it_started_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "run.log").open("w")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TIKTOK_ACCESS_TOKEN", "TTA_CONFIG")}
    run = subprocess.Popen([sys.executable, "-m", "tiktok_audiences", "run", "--port", str(port)], cwd=tmp_path,
                           env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "running; Ctrl-C to stop" in (tmp_path / "run.log").read_text(), 60,
                   message="run to start its stack")
        started = children_of(run.pid)  # redis-server, the sandbox, the worker and intake
        assert len(started) >= 4, started
        run.send_signal(signal.SIGTERM)  # a service manager stopping it, or `timeout`
        assert run.wait(30) == 0
        wait_until(lambda: not any(alive(pid) for pid in started), 20, message="the stack's processes to stop")
    finally:
        if run.poll() is None:
            run.kill()
        log.close()


def test_run_refuses_a_port_that_is_taken(tmp_path: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tiktok_audiences", "run", "--port", str(port)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


@pytest.mark.parametrize("users", [10, 1000])
def test_run_demo_once_on_port_zero_picks_a_free_port_and_ends_exact(tmp_path: Path, users: int) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TIKTOK_ACCESS_TOKEN", "TTA_CONFIG")}
    done = subprocess.run([sys.executable, "-m", "tiktok_audiences", "run", "--demo", "--once", "--users",
                           str(users), "--port", "0"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "intake on http://127.0.0.1:" in output and "intake on http://127.0.0.1:0 " not in output
    assert "MISMATCH" not in output
