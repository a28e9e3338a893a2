"""The pre-fork supervisor of ``serve --workers N``: routing is CPU-bound Python and one process is one core,
so several processes share the port (``SO_REUSEPORT``); this forks them and stops them together."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

import structlog

log = structlog.get_logger("producer.http")


def run_processes(count: int, run: Callable[[], None]) -> int:
    """Fork ``count`` children running ``run``; stop them all on SIGTERM/SIGINT or when one fails. Returns the
    exit code: 0, or the first failed child's (1 for one killed by a signal)."""
    children: set[int] = set()
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                run()
            except BaseException as exc:  # the child must never fall back into the parent's code
                log.error("intake process failed", error=f"{type(exc).__name__}: {exc}")
                code = 1
            finally:
                os._exit(code)
        children.add(pid)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exit_code = 0
    while children:
        pid, status = os.wait()
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not stopping:
            exit_code = code if code > 0 else 1
            stop()
    return exit_code
