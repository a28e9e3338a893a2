"""``tiktok-audiences``: one console script for the producer, the worker, the sandbox and operators."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.logging import configure_logging
from core.settings import Settings, get_settings
from tiktok_audiences.commands import audiences, auth, batches, config, destinations, services, shadow, stats

if TYPE_CHECKING:
    from tiktok_audiences.commands.handler import Subparsers

# The command groups, in the order ``--help`` lists them.
COMMAND_GROUPS = (services, batches, stats, destinations, audiences, shadow, config, auth)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiktok-audiences", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    _register_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings)
    try:
        return int(args.handler(args, settings) or 0)
    except KeyboardInterrupt:
        return 130


# ------------------------------------------------------------------------------------------------ bench

# tiktok_audiences.bench imports usable_cpus from this module.
usable_cpus = services.usable_cpus


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from tiktok_audiences.bench import main as bench_main

    return bench_main(args)


def _register_bench(sub: Subparsers) -> None:
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

if __name__ == "__main__":
    sys.exit(main())
