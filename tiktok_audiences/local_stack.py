"""The whole service on one machine, each part a child process started as an operator would start it.

``tiktok-audiences run``, the benchmarks and the integration tests need the same thing, written once here: a
Redis (a local ``redis-server`` without persistence, or a URL already in the environment), the sandbox TikTok
API, intake and workers. Each service is a ``tiktok-audiences`` command in a session of its own, so that
stopping it stops its children too (intake's forked servers, a worker's Celery pool); each logs to a file in
the stack's folder; each is waited for until it answers; and they stop together.
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
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack, suppress
from functools import partial
from pathlib import Path
from typing import TypeVar

import redis
import yaml

from core.redis_client import LOCAL, redis_from_url
from sandbox.admin import SandboxAdmin

SANDBOX_TOKEN = "sandbox-token"
SANDBOX_ADVERTISER = "7000000000000000001"
SANDBOX_DESTINATION = "sandbox"
START_TIMEOUT = 20.0  # seconds a service may take to answer
STOP_TIMEOUT = 15.0  # seconds a service may take to stop after SIGTERM before it is killed
# A free port may be taken (by an outgoing connection) between choosing it and intake binding it.
INTAKE_ATTEMPTS = 3

T = TypeVar("T")


class StackError(RuntimeError):
    """A part of the stack did not start, or stopped on its own."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def say(message: str) -> None:
    sys.stderr.write(f"[tiktok-audiences] {message}\n")
    sys.stderr.flush()


def wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """The first true value of ``predicate``, polled every 0.1 s; an exception counts as "not yet"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # not up yet
            pass
        time.sleep(0.1)
    raise StackError(f"{what} did not come up within {timeout:.0f}s")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_like_ctrl_c() -> None:
    """Make SIGTERM (a service manager, ``timeout``, ``docker stop``) and SIGHUP (the terminal went away) stop
    this command as Ctrl-C does, so the processes it started are stopped with it instead of left running."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)


def intake_command(port: int, processes: int | None) -> list[str]:
    """The ``serve`` command line: without a process count it is the plain command a user runs (serve's own
    default, one process per usable core)."""
    return ["serve", "--port", str(port), *(["--workers", str(processes)] if processes is not None else [])]


def sandbox_destinations(path: Path) -> None:
    """A destinations file whose one destination is the sandbox's advertiser, creating audiences as needed."""
    path.write_text(yaml.safe_dump({"destinations": [{
        "id": SANDBOX_DESTINATION,
        "name": "TikTok sandbox",
        "access_token_env": "TIKTOK_ACCESS_TOKEN",
        "advertiser_ids": [SANDBOX_ADVERTISER],
        "native": {"advertiser_id": SANDBOX_ADVERTISER, "auto_create": True},
        "mappings": [{"action": "addToAudience"}, {"action": "removeFromAudience"}],
    }]}, sort_keys=False))


class RedisServer:
    """A ``redis-server`` without persistence on a free port, its files in ``workdir``."""

    def __init__(self, workdir: Path, *, extra_args: Sequence[str] = ()) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise StackError("redis-server is not on PATH (make test and make bench install it; "
                             "or apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log"), *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.client().ping, 10, "redis-server")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis_from_url(self.url, LOCAL)


class ServiceProcess:
    """One command, ``python -m tiktok_audiences ARGS`` unless another module is named, in a session of its own
    and logged to ``<logdir>/<name>.log``."""

    def __init__(self, name: str, args: Sequence[str], env: Mapping[str, str], logdir: Path, *,
                 module: str = "tiktok_audiences") -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.module = module
        self.log_path = logdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the file descriptor
            self.process = subprocess.Popen([sys.executable, "-m", self.module, *self.args], env=self.env,
                                            stdout=log, stderr=log, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise StackError(f"{self.name} was never started")
        return self.process.pid

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def check(self) -> None:
        """Raise if the command has stopped on its own."""
        if self.process is not None and self.process.poll() is not None:
            raise StackError(f"{self.name} exited with code {self.process.returncode}; see {self.log_path}")

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def signal_session(self, signum: int = signal.SIGTERM) -> None:
        """``signum`` to the command's whole session (its children too), if it is still running."""
        if self.process is None or self.process.poll() is not None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def wait_or_kill(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> None:
        self.signal_session(signum)
        self.wait_or_kill(timeout)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
        return bool(response.status == 200)


class LocalStack:
    """Redis, the sandbox, intake and workers of one run, logging into ``workdir``.

    ``env`` is the environment every command is started with; it is read at each start, so a caller may change
    it between starts (a setting for the next intake, another Redis). ``processes`` are intake and the workers,
    in the order started; the sandbox and Redis are kept apart, so :meth:`stop_processes` can stop the pipeline
    and leave them up.
    """

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = dict(os.environ) if env is None else env
        self.redis_server: RedisServer | None = None
        self.sandbox: ServiceProcess | None = None
        self.sandbox_url = ""
        self.intake_url = ""
        self.processes: list[ServiceProcess] = []
        self._cleanup = ExitStack()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def redis_url(self) -> str:
        return self.env.get("REDIS_URL", "")

    def start_redis(self, *, allow_fake: bool = False) -> str:
        """A Redis for this stack's lifetime, named in ``env`` as ``REDIS_URL``; returns its URL. Without
        ``redis-server`` on PATH, ``allow_fake`` serves an in-process fake Redis instead (fine for a demo,
        meaningless to time)."""
        if shutil.which("redis-server") or not allow_fake:
            server = RedisServer(self.workdir).start()
            self._cleanup.callback(server.stop)
            self.redis_server = server
            url = server.url
        else:
            url = self._serve_fake_redis()
        self.env["REDIS_URL"] = url
        return url

    def _serve_fake_redis(self) -> str:
        from fakeredis import TcpFakeServer

        port = free_port()
        server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._cleanup.callback(server.shutdown)
        url = f"redis://127.0.0.1:{port}/0"
        wait_for(redis_from_url(url, LOCAL).ping, 10, "the fake Redis")
        return url

    def start_sandbox(self, tokens: str = SANDBOX_TOKEN) -> str:
        """The sandbox TikTok API on a free port, accepting ``tokens`` (comma-separated); returns its URL once
        it answers."""
        port = free_port()
        self.sandbox = ServiceProcess("sandbox", ["sandbox", "--port", str(port)],
                                      {**self.env, "TTA_SANDBOX_TOKENS": tokens}, self.workdir).start()
        url = f"http://127.0.0.1:{port}"
        admin = SandboxAdmin(url)
        if not self._wait_until_up(self.sandbox, lambda: admin.state() is not None, "the sandbox TikTok API"):
            self.sandbox.check()
        self.sandbox_url = url
        return url

    def use_sandbox(self) -> None:
        """Point the commands started from now on at this stack's sandbox, with its token and a destinations
        file (in ``workdir``) naming its advertiser."""
        config = self.workdir / "destinations.yaml"
        sandbox_destinations(config)
        self.env.update({"TIKTOK_API_BASE_URL": self.sandbox_url, "TIKTOK_ACCESS_TOKEN": SANDBOX_TOKEN,
                         "TTA_CONFIG": str(config)})

    def start_intake(self, port: int | None = None, processes: int | None = None, *,
                     name: str = "intake") -> ServiceProcess:
        """``serve`` on ``port`` (a free one when None), returned once ``/healthz`` answers; ``processes`` is
        ``serve --workers`` (None: serve's own default)."""
        attempts = 1 if port else INTAKE_ATTEMPTS
        for _ in range(attempts):
            chosen = port or free_port()
            process = self.start(name, *intake_command(chosen, processes))
            url = f"http://127.0.0.1:{chosen}"
            if self._wait_until_up(process, partial(_healthy, url), "intake"):
                self.intake_url = url
                return process
        raise StackError(f"intake exited before it answered; see {process.log_path}:\n{process.tail()}")

    def start_worker(self, concurrency: int = 2, *, name: str = "worker", **env: str) -> ServiceProcess:
        """``worker --concurrency N``, with ``env`` added to the stack's environment (not waited for: a worker
        answers nothing until asked to)."""
        return self.start(name, "worker", f"--concurrency={concurrency}", extra_env=env)

    def start(self, name: str, *args: str, module: str = "tiktok_audiences",
              extra_env: Mapping[str, str] | None = None) -> ServiceProcess:
        """Any command as part of the pipeline, stopped with it."""
        process = ServiceProcess(name, args, {**self.env, **(extra_env or {})}, self.workdir, module=module)
        self.processes.append(process.start())
        return process

    def _wait_until_up(self, process: ServiceProcess, ready: Callable[[], bool], what: str,
                       timeout: float = START_TIMEOUT) -> bool:
        """True once ``ready`` holds while ``process`` runs (the answer came from it, not from another process
        on the same port); False if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.exited():
                return False
            try:
                if ready():
                    return not process.exited()
            except Exception:  # not up yet
                pass
            time.sleep(0.1)
        raise StackError(f"{what} did not come up within {timeout:.0f}s; see {process.log_path}")

    def check(self) -> None:
        """Raise if any service has stopped on its own."""
        for process in [*([self.sandbox] if self.sandbox else []), *self.processes]:
            process.check()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes)

    def stop_processes(self) -> None:
        """Stop intake and the workers, all at once, leaving Redis and the sandbox up."""
        for process in reversed(self.processes):
            process.signal_session(signal.SIGTERM)
        for process in reversed(self.processes):
            process.wait_or_kill()
        self.processes.clear()

    def stop(self) -> None:
        self.stop_processes()
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        self._cleanup.close()
