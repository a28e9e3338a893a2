"""The benchmark runs the commands a user runs, with the flags the ``bench`` command had."""

from __future__ import annotations

import importlib
import sys

from benchmarks.__main__ import build_parser
from benchmarks.run import StackOptions
from tiktok_audiences.local_stack import intake_command


def test_the_bench_starts_plain_serve_unless_told_a_process_count() -> None:
    assert StackOptions().intake_processes is None
    assert intake_command(8080, None) == ["serve", "--port", "8080"]
    assert intake_command(8080, 1) == ["serve", "--port", "8080", "--workers", "1"]


def test_the_defaults_are_the_documented_run() -> None:
    args = build_parser().parse_args([])
    assert (args.events, args.audiences, args.workers, args.baseline_events) == (200_000, 10, 2, 5_000)
    assert args.intake_processes is None and not args.grid and not args.no_grid


def test_one_grid_cell_can_be_asked_for() -> None:
    args = build_parser().parse_args(["--grid", "--grid-audiences", "100", "--grid-modes", "existing"])
    assert args.grid and args.grid_audiences == "100" and args.grid_modes == "existing"


def test_importing_the_baseline_builds_no_celery_app() -> None:
    sys.modules.pop("benchmarks.baseline", None)
    baseline = importlib.import_module("benchmarks.baseline")
    from celery import Celery

    assert not any(isinstance(value, Celery) for value in vars(baseline).values())
    app = baseline.baseline_app("memory://")
    assert baseline.TASK in app.tasks
    assert app.conf.task_default_queue == baseline.QUEUE
