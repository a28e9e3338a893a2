"""The commands that run the service's parts: ``serve`` (intake), ``ingest`` (intake from a file), ``worker``,
``scheduler``, ``sandbox`` (a stand-in TikTok) and ``run`` (all of them on one machine)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from core.settings import Settings
from sandbox.server import add_arguments as add_sandbox_arguments
from tiktok_audiences.commands.output import fail

if TYPE_CHECKING:
    from tiktok_audiences.commands.handler import Subparsers

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # "QUOTA PERIOD" (microseconds) or "max PERIOD"


def usable_cpus() -> int:
    """The cores this process may run on: its CPU affinity, lowered to a cgroup v2 CPU quota if one is set
    (a container granted 2 CPUs on a 64-core host should start 2 intake processes, not 64)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_intake_processes(port: int) -> int:
    """One intake process per usable core: intake is CPU-bound Python, one process is one core. With port 0
    each process would bind a port of its own, so that stays one process."""
    return 1 if port == 0 else usable_cpus()


def serve(args: argparse.Namespace, settings: Settings) -> int:
    from producer.http import serve

    workers = args.workers if args.workers is not None else default_intake_processes(args.port)
    return serve(args.host, args.port, settings, no_auth=args.no_auth, workers=workers) or 0


def worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.runner import run_worker

    return run_worker(settings, concurrency=args.concurrency, loglevel=args.loglevel,
                      metrics_port=args.metrics_port, scheduler=False if args.no_scheduler else None)


def scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from worker.runner import run_scheduler_role

    return run_scheduler_role(settings, metrics_port=args.metrics_port)


def ingest(args: argparse.Namespace, settings: Settings) -> int:
    from producer.ingest import run_ingest

    return run_ingest(args.file, settings)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from tiktok_audiences.stack import run_stack

    return run_stack(settings, demo=args.demo, once=args.once, users=args.users, port=args.port)


def sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from sandbox.server import config_from_args, serve

    try:
        serve(args.host, args.port, config_from_args(args))
    except OSError as exc:
        return fail(f"sandbox cannot listen on {args.host}:{args.port}: {exc}")
    return 0


def register(sub: Subparsers) -> None:
    """``serve``, ``worker``, ``scheduler``, ``ingest``, ``run`` and ``sandbox``."""
    p = sub.add_parser("serve", help="HTTP intake (Segment tracking API shape)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--no-auth", action="store_true", help="accept events without a write key")
    p.add_argument("--workers", type=int, default=None,
                   help="intake processes sharing the port (default: one per usable CPU core)")
    p.set_defaults(handler=serve)

    p = sub.add_parser("worker", help="a Celery worker plus batch scheduling")
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--loglevel", default="WARNING")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve /metrics, /healthz and /readyz on this port (default TTA_WORKER_METRICS_PORT)")
    p.add_argument("--no-scheduler", action="store_true",
                   help="consume only; a `scheduler` process schedules (default TTA_WORKER_SCHEDULER)")
    p.set_defaults(handler=worker)

    p = sub.add_parser("scheduler", help="the batch scheduler alone (workers may then scale to zero)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve /metrics, /healthz and /readyz on this port (default TTA_WORKER_METRICS_PORT)")
    p.set_defaults(handler=scheduler)

    p = sub.add_parser("ingest", help="enqueue newline-delimited JSON events from FILE (- for stdin)")
    p.add_argument("file")
    p.set_defaults(handler=ingest)

    p = sub.add_parser("run", help="the whole stack on one machine with embedded defaults")
    p.add_argument("--demo", action="store_true", help="feed a generated Engage audience through it")
    p.add_argument("--once", action="store_true", help="exit when everything fed has been delivered")
    p.add_argument("--users", type=int, default=30_000, help="users in the --demo audience")
    p.add_argument("--port", type=int, default=8080, help="intake port (0: a free one, printed)")
    p.set_defaults(handler=run)

    p = sub.add_parser("sandbox", help="a local stand-in for TikTok's Business API")
    add_sandbox_arguments(p)
    p.set_defaults(handler=sandbox)
