"""``serve``: start-up checks, then the intake in one process or several sharing the port, until SIGTERM or
SIGINT; connections guarded as :mod:`producer.http.connections` describes."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TYPE_CHECKING

import structlog

from core.heap import settle_heap
from core.settings import Settings
from producer.http.app import make_app
from producer.http.connections import serve_until_stopped
from producer.http.metrics import share_metrics_between_processes
from producer.http.processes import run_processes
from producer.http.startup import StartupError, check_startup, ensure_port_free, load_router

if TYPE_CHECKING:
    from producer.routing import Router

log = structlog.get_logger("producer.http")


def serve(host: str, port: int, settings: Settings, *, no_auth: bool = False, workers: int = 1) -> int:
    """Run the intake until stopped; returns an exit code. With ``workers > 1`` (``serve --workers N``) that many
    processes share the port (``SO_REUSEPORT``) so intake uses every core: routing is CPU-bound Python, one
    process is one core.

    Refuses to start (message on stderr, exit code 2) without authentication configured, on a port another
    server holds, or with a destinations file it cannot use."""
    from core.destinations import ConfigError

    try:
        check_startup(settings, no_auth=no_auth)
        ensure_port_free(host, port)
        router = load_router(settings)
    except (StartupError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The compiled router is long-lived: keep the collector from rescanning it, and keep its pages shared
    # between forked processes instead of copied by the collector's writes; collect young objects rarely
    # (core.heap says why).
    settle_heap()

    def run(reuse_port: bool) -> None:
        asyncio.run(_serve_until_signalled(router, settings, no_auth, host, port, reuse_port))

    log.info("intake serving", host=host, port=port, workers=max(workers, 1), auth=not no_auth)
    if workers <= 1:
        run(reuse_port=False)
        return 0
    cleanup = share_metrics_between_processes()
    try:
        return run_processes(workers, lambda: run(reuse_port=True))
    finally:
        cleanup()


async def _serve_until_signalled(router: Router, settings: Settings, no_auth: bool, host: str, port: int,
                                 reuse_port: bool) -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await serve_until_stopped(await make_app(router, settings, no_auth=no_auth), host, port,
                              reuse_port=reuse_port, header_timeout=settings.header_timeout,
                              keepalive_timeout=settings.keepalive_timeout, stopped=stopped)
