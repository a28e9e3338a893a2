"""Child processes of the commands that run the whole service on one machine (``run``, ``bench``).

A local ``redis-server`` (or an in-process fake Redis when there is none), and ``tiktok-audiences`` commands
started exactly as an operator would start them, each in its own session so that stopping one stops its
children too (intake's forked servers, a worker's Celery pool).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from core.redis_client import LOCAL, redis_from_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def say(message: str) -> None:
    sys.stderr.write(f"[tiktok-audiences] {message}\n")
    sys.stderr.flush()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_like_ctrl_c() -> None:
    """Make SIGTERM (a service manager, ``timeout``, ``docker stop``) and SIGHUP (the terminal went away) stop
    this command as Ctrl-C does, so the processes it started are stopped with it instead of left running."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)


class Children:
    """Child processes that live and die with this command."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None,
              module: str = "tiktok_audiences") -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        process = subprocess.Popen([sys.executable, "-m", module, *args],
                                   env={**self.env, **(extra_env or {})}, stdout=log, stderr=log,
                                   start_new_session=True)
        self.processes.append((name, process))
        return process

    def check(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {process.returncode}; "
                                   f"see {self.workdir / (name + '.log')}")

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for _, process in reversed(self.processes):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()


def start_redis(stack: ExitStack, workdir: Path, *, quiet: bool = False) -> str:
    """A Redis for this command's lifetime, without persistence; returns its URL."""
    binary = shutil.which("redis-server")
    port = free_port()
    if binary:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop() -> None:
            process.terminate()
            process.wait(10)

        stack.callback(stop)
        if not quiet:
            say(f"started redis-server on 127.0.0.1:{port}")
    else:
        from fakeredis import TcpFakeServer

        server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        stack.callback(server.shutdown)
        say(f"no redis-server on PATH: serving an in-process fake Redis on 127.0.0.1:{port}")
    url = f"redis://127.0.0.1:{port}/0"
    client = redis_from_url(url, LOCAL)
    wait_for(client.ping, 10, "Redis")
    return url
