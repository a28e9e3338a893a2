"""Running the sandbox: :func:`serve` in the foreground (the CLI), :class:`SandboxThread` in the background
(tests), and the argument handling both CLIs share.

Access logging is off: at benchmark rates a log line per request costs more than the request itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType

from aiohttp import web

from sandbox.admin import SandboxAdmin
from sandbox.app import API_PREFIX, build_app
from sandbox.config import SandboxConfig
from sandbox.context import SANDBOX, Sandbox

__all__ = ["SandboxThread", "add_arguments", "build_app", "config_from_args", "main", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9500
# In-flight requests (a "slow" fault sleeping) get this long to finish at shutdown; the sandbox owes no one.
SHUTDOWN_TIMEOUT = 2.0
# A test's sandbox owes even less: stopping it should not add seconds to a test run.
THREAD_SHUTDOWN_TIMEOUT = 0.25
BACKLOG = 1024


def serve(host: str, port: int, config: SandboxConfig | None = None) -> None:
    """Run the sandbox until interrupted (SIGINT/SIGTERM). Prints one line once it is listening."""

    def announce(*_: object) -> None:
        print(f"TikTok sandbox listening on http://{host}:{port} (API {API_PREFIX}, admin /_sandbox/)",
              flush=True)

    web.run_app(
        build_app(config),
        host=host,
        port=port,
        access_log=None,
        print=announce,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        backlog=BACKLOG,
    )


class SandboxThread:
    """A sandbox on its own event loop in a daemon thread, on a free port unless one is given.

    Use as a context manager, or ``start()`` / ``stop()``. ``base_url`` is what a TikTok client takes as its
    API base; ``admin`` is a :class:`SandboxAdmin` for it.
    """

    def __init__(self, config: SandboxConfig | None = None, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.host = host
        self.port = port
        self.app = build_app(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def sandbox(self) -> Sandbox:
        """The live state and knobs. Mutated on the sandbox thread: read it only between requests."""
        return self.app[SANDBOX]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin(self) -> SandboxAdmin:
        return SandboxAdmin(self.base_url)

    def start(self, timeout: float = 10.0) -> SandboxThread:
        if self._thread is not None:
            raise RuntimeError("sandbox thread already started")
        self._thread = threading.Thread(target=self._run, name="tiktok-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"sandbox did not start within {timeout:g}s")
        if self._error is not None:
            raise RuntimeError(f"sandbox failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=THREAD_SHUTDOWN_TIMEOUT)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.host, self.port, backlog=BACKLOG)
            loop.run_until_complete(site.start())
            self.port = int(runner.addresses[0][1])
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            # Handlers still running past the shutdown timeout (a "slow" fault asleep) are cancelled, not
            # abandoned: a closed loop with pending tasks makes asyncio log errors at exit.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        self._loop = None

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's command-line options, for any CLI that runs it."""
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"interface (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--token",
        action="append",
        dest="tokens",
        metavar="TOKEN",
        help="a valid access token (repeatable; default $TTA_SANDBOX_TOKENS or 'sandbox-token')",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for fault injection")


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The config for parsed arguments; options a CLI did not define fall back to the environment."""
    config = SandboxConfig.from_env(tokens=getattr(args, "tokens", None))
    seed = getattr(args, "seed", None)
    return replace(config, seed=seed) if seed is not None else config


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sandbox``: run the sandbox in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local TikTok Business API")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, config_from_args(args))
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
