"""``python -m benchmarks [options]``: the flags of the benchmark, then :func:`benchmarks.bench.main`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.logging import configure_logging
from core.settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks",
                                description="end-to-end benchmark against a one-task-per-event baseline, and a "
                                "grid of many audiences at TikTok's rate limit")
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(get_settings())  # as the CLI did: the bench's own log lines go where the service's go
    from benchmarks.bench import main as bench_main

    try:
        return bench_main(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
