"""``tiktok-audiences``: one console script for the producer, the worker, the sandbox and operators."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from core.logging import configure_logging
from core.redis_client import OPERATOR, display, redis_from_url
from core.settings import Settings, get_settings
from tiktok_audiences.output import fail

Handler = Callable[[argparse.Namespace, Settings], int]


def _with_redis(fn: Callable[[argparse.Namespace, Settings, redis.Redis], int]) -> Handler:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        client = redis_from_url(settings.redis_url, OPERATOR)
        try:
            client.ping()
        except redis.RedisError as exc:
            return fail(f"cannot reach Redis at {display(settings.redis_url)}: {exc}")
        return fn(args, settings, client)

    return run


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


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from producer.http import serve

    workers = args.workers if args.workers is not None else default_intake_processes(args.port)
    return serve(args.host, args.port, settings, no_auth=args.no_auth, workers=workers) or 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from worker.runner import run_worker

    return run_worker(settings, concurrency=args.concurrency, loglevel=args.loglevel,
                      metrics_port=args.metrics_port, scheduler=False if args.no_scheduler else None)


def _scheduler(args: argparse.Namespace, settings: Settings) -> int:
    from worker.runner import run_scheduler_role

    return run_scheduler_role(settings, metrics_port=args.metrics_port)


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from producer.ingest import run_ingest

    return run_ingest(args.file, settings)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from tiktok_audiences.stack import run_stack

    return run_stack(settings, demo=args.demo, once=args.once, users=args.users, port=args.port)


def _sandbox(args: argparse.Namespace, settings: Settings) -> int:
    from sandbox.server import config_from_args, serve

    try:
        serve(args.host, args.port, config_from_args(args))
    except OSError as exc:
        return fail(f"sandbox cannot listen on {args.host}:{args.port}: {exc}")
    return 0


def _config_check(args: argparse.Namespace, settings: Settings) -> int:
    from tiktok_audiences.config_check import config_check

    return config_check(args.file or settings.config_path)


def _import_segment(args: argparse.Namespace, settings: Settings) -> int:
    from tiktok_audiences.segment_import import import_segment

    return import_segment(args.files, args.output, args.id)


def _operator(name: str) -> Handler:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        from tiktok_audiences import operator

        return _with_redis(getattr(operator, name))(args, settings)

    return run


def _audiences(name: str) -> Handler:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        from tiktok_audiences import audiences

        return _with_redis(getattr(audiences, name))(args, settings)

    return run


def _module_command(module: str, name: str) -> Handler:
    """A command of ``tiktok_audiences.<module>`` that takes a Redis client, imported when it runs."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        import importlib

        return _with_redis(getattr(importlib.import_module(f"tiktok_audiences.{module}"), name))(args, settings)

    return run


def _auth(name: str) -> Handler:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        from tiktok_audiences import auth

        return int(getattr(auth, name)(args, settings))

    return run


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from tiktok_audiences.bench import main as bench_main

    return bench_main(args)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} must be above 0 and at most 3600 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiktok-audiences", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="HTTP intake (Segment tracking API shape)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--no-auth", action="store_true", help="accept events without a write key")
    p.add_argument("--workers", type=int, default=None,
                   help="intake processes sharing the port (default: one per usable CPU core)")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("worker", help="a Celery worker plus batch scheduling")
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--loglevel", default="WARNING")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve /metrics, /healthz and /readyz on this port (default TTA_WORKER_METRICS_PORT)")
    p.add_argument("--no-scheduler", action="store_true",
                   help="consume only; a `scheduler` process schedules (default TTA_WORKER_SCHEDULER)")
    p.set_defaults(handler=_worker)

    p = sub.add_parser("scheduler", help="the batch scheduler alone (workers may then scale to zero)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve /metrics, /healthz and /readyz on this port (default TTA_WORKER_METRICS_PORT)")
    p.set_defaults(handler=_scheduler)

    p = sub.add_parser("ingest", help="enqueue newline-delimited JSON events from FILE (- for stdin)")
    p.add_argument("file")
    p.set_defaults(handler=_ingest)

    p = sub.add_parser("run", help="the whole stack on one machine with embedded defaults")
    p.add_argument("--demo", action="store_true", help="feed a generated Engage audience through it")
    p.add_argument("--once", action="store_true", help="exit when everything fed has been delivered")
    p.add_argument("--users", type=int, default=30_000, help="users in the --demo audience")
    p.add_argument("--port", type=int, default=8080, help="intake port (0: a free one, printed)")
    p.set_defaults(handler=_run)

    p = sub.add_parser("sandbox", help="a local stand-in for TikTok's Business API")
    from sandbox.server import add_arguments

    add_arguments(p)
    p.set_defaults(handler=_sandbox)

    batches = sub.add_parser("batches", help="the delivery ledger").add_subparsers(dest="verb", required=True)
    p = batches.add_parser("list")
    p.add_argument("--status")
    p.add_argument("--audience")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_operator("batches_list"))
    p = batches.add_parser("show")
    p.add_argument("batch_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_operator("batches_show"))

    p = sub.add_parser("replay", help="re-deliver dead batches")
    p.add_argument("batch_ids", nargs="*")
    p.add_argument("--status")
    p.add_argument("--since", help="only batches that died within this duration (e.g. 4h)")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_operator("replay"))

    p = sub.add_parser("stats", help="backlog, batches, rejections and audiences")
    p.add_argument("--json", action="store_true")
    p.add_argument("--watch", action="store_true",
                   help="a live view: backlog per audience, calls/s against the rate limit, cooldowns, pauses, "
                        "dead batches (Ctrl-C to stop)")
    p.add_argument("--interval", type=_positive_seconds, default=2.0, metavar="SECONDS",
                   help="how often --watch redraws (default 2)")
    p.set_defaults(handler=_operator("stats"))

    dest = sub.add_parser("destinations", help="paused and throttled destinations").add_subparsers(
        dest="verb", required=True)
    p = dest.add_parser("resume", help="lift a pause after the token was fixed")
    p.add_argument("destination")
    p.set_defaults(handler=_operator("destinations_resume"))
    p = dest.add_parser("lift-cooldown", help="end the rest a throttle put on a destination's token now")
    p.add_argument("destination")
    p.set_defaults(handler=_operator("destinations_lift_cooldown"))

    aud = sub.add_parser("audiences", help="TikTok audiences").add_subparsers(dest="verb", required=True)
    p = aud.add_parser("list")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_audiences("audiences_list"))
    p = aud.add_parser("create")
    p.add_argument("--destination", help="destination id (default: the only one)")
    p.add_argument("--advertiser-id", help="default: the destination's first advertiser")
    p.add_argument("name")
    p.set_defaults(handler=_audiences("audiences_create"))
    p = aud.add_parser("resync", help="re-send an audience's recorded members through the normal delivery path")
    p.add_argument("audience", help="TikTok audience id, Engage audience key (@key) or target name")
    p.add_argument("--dry-run", action="store_true", help="count and show what would be sent; send nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_module_command("resync", "audiences_resync"))

    shadow = sub.add_parser("shadow", help="shadow destinations").add_subparsers(dest="verb", required=True)
    p = shadow.add_parser("report", help="adds and removes per audience that shadow destinations recorded")
    p.add_argument("--since", default="24h", help="a duration ago (4h) or an ISO 8601 time (default 24h)")
    p.add_argument("--until", help="a duration ago or an ISO 8601 time (default now)")
    p.add_argument("--audience", help="only this audience id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_module_command("shadow", "shadow_report_command"))

    cfg = sub.add_parser("config", help="the destinations file").add_subparsers(dest="verb", required=True)
    p = cfg.add_parser("check")
    p.add_argument("file", nargs="?")
    p.set_defaults(handler=_config_check)
    p = cfg.add_parser(
        "import-segment",
        help="a destinations file from a Segment TikTok Audiences destination and its subscriptions",
        description="Reads what Segment's Public API answers for GET /destinations/{id} and "
        "GET /destinations/{id}/subscriptions (one file or several; '-' is stdin), writes a destinations file "
        "and lists what could not be carried over.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-o", "--output", help="write the destinations file here (default: standard output)")
    p.add_argument("--id", help="the destination's id (default: from its Segment name)")
    p.set_defaults(handler=_import_segment)

    auth = sub.add_parser("auth", help="TikTok authorisation").add_subparsers(dest="verb", required=True)
    p = auth.add_parser("exchange", help="exchange an OAuth auth code for an access token")
    p.add_argument("--app-id", required=True)
    p.add_argument("--secret-env", required=True, help="environment variable holding the app secret")
    p.add_argument("--auth-code-env", metavar="VAR",
                   help="environment variable holding the auth code (default: read it from stdin)")
    p.add_argument("--auth-code", help=argparse.SUPPRESS)  # refused: argv is visible to every user in ps
    p.add_argument("--write", help="write the token to this file (mode 0600)")
    p.set_defaults(handler=_auth("exchange"))
    p = auth.add_parser("check", help="verify each destination's token")
    p.set_defaults(handler=_auth("check"))

    p = sub.add_parser("bench", help="end-to-end benchmark against a one-task-per-event baseline, and a grid of "
                       "many audiences at TikTok's rate limit")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--audiences", type=int, default=10)
    p.add_argument("--workers", type=int, default=2, help="worker (Celery pool) processes")
    p.add_argument("--intake-processes", type=int, default=None,
                   help="serve --workers N (default: plain serve, one process per usable core)")
    p.add_argument("--flush-interval", type=float, default=1.0, help="TTA_FLUSH_INTERVAL for the run")
    p.add_argument("--rate-limit", type=float, default=10_000.0,
                   help="TTA_RATE_LIMIT_QPS for the run: TikTok calls per second (every call takes a slot)")
    p.add_argument("--baseline-events", type=int, default=5_000, help="0 skips the baseline")
    p.add_argument("--no-stages", action="store_true", help="skip the stage benchmarks")
    p.add_argument("--scaling", action="store_true",
                   help="also measure 1/2/4 workers and 1/100/10000 audiences")
    p.add_argument("--json", help="also write the results to this file")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--grid", action="store_true",
                      help="only the rate-limited grid (no throughput run, baseline or stages)")
    grid.add_argument("--no-grid", action="store_true", help="skip the rate-limited grid")
    p.add_argument("--grid-audiences", help="comma-separated audience counts for the grid's cells "
                   "(default: 10,100,1000,10000, plus 200 auto-created)")
    p.add_argument("--grid-modes", help="existing, auto-created or both (comma-separated; default both)")
    p.add_argument("--grid-users", type=int, default=5, help="users per audience in the grid")
    p.add_argument("--grid-rate", type=float, default=10.0, help="TikTok calls per second in the grid")
    p.add_argument("--grid-timeout", type=float, default=None,
                   help="seconds a cell may take (default: max(60, 1.5 x its floor))")
    p.add_argument("--grid-long", action="store_true",
                   help="also run cells whose floor is over 300 s (10,000 auto-created audiences: 1,000 s)")
    p.set_defaults(handler=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    try:
        return int(args.handler(args, settings) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
