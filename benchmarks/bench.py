"""``python -m benchmarks`` (``make bench``): end-to-end throughput on this machine, against the
one-Celery-task-per-event design, with stage figures to compare against, a rate-limited grid of many
audiences at TikTok's 10 calls/s, and optional scaling runs.

Everything runs here: a redis-server without persistence, the sandbox TikTok API, intake (plain ``serve``,
as a user starts it) and a worker (``worker --concurrency N``) as child processes, fed through ``POST
/v1/batch`` (100 events a request, 32 connections). See README "Performance" for what each figure means.
The run is bounded: every wait has a deadline; the default run takes a few minutes, most of it the grid.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.grid import (
    MODES,
    GridCell,
    GridResult,
    SkippedCell,
    grid_lines,
    grid_target_lines,
    grid_to_json,
    plan_grid,
)
from benchmarks.grid_run import grid_options, run_grid
from benchmarks.measure import StageUsage, sample_tree, usage
from benchmarks.run import (
    BenchStack,
    RunResult,
    StackOptions,
    measure,
    measure_intake_alone,
    to_json,
)
from benchmarks.workload import Workload, build_workload
from tiktok_audiences.commands.services import usable_cpus
from tiktok_audiences.local_stack import SANDBOX_ADVERTISER, say, stop_like_ctrl_c, wait_for

# The targets, printed beside the figures (a benchmark reports; it does not fail on speed).
TARGET_END_TO_END = 60_000
TARGET_END_TO_END_STRETCH = 100_000
TARGET_RATIO = 50
TARGET_INTAKE = 100_000
TARGET_WORKER_RSS_MB = 300
BASELINE_TIMEOUT = 180.0
SCALING_SETTLE_TIMEOUT = 600.0
REPO_ROOT = Path(__file__).resolve().parents[1]  # benchmarks/ is run from a checkout, never installed


@dataclass(slots=True)
class BaselineResult:
    events: int
    seconds: float = 0.0
    enqueue_seconds: float = 0.0
    enqueue_cpu: float = 0.0
    delivered: int = 0
    worker: StageUsage | None = None
    error: str = ""

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


# -- baseline ------------------------------------------------------------------------------------------------


def run_baseline(stack: BenchStack, workload: Workload, events: int, workers: int) -> BaselineResult:
    """The first ``events`` events through one Celery task each, against the same sandbox (reset first)."""
    from benchmarks.baseline import baseline_app, enqueue_all

    chosen = workload.events[:events]
    result = BaselineResult(len(chosen))
    stack.stop_pipeline()
    stack.admin.reset()
    keys_used = sorted({e["context"]["personas"]["computation_key"] for e in chosen})
    audience_ids = {k: stack.admin.seed_audience(SANDBOX_ADVERTISER, name=k) for k in keys_used}
    broker = stack.redis_url.rsplit("/", 1)[0] + "/1"
    app = baseline_app(broker)
    worker = stack.local.start(
        "baseline-worker", f"--concurrency={workers}", "--loglevel=WARNING", "--without-gossip",
        "--without-mingle", "--without-heartbeat", module="benchmarks.baseline",
        extra_env={"TTA_BASELINE_BROKER": broker, "TTA_BASELINE_API": stack.sandbox_url,
                   "PYTHONPATH": str(REPO_ROOT)})
    # Warm up: one task through, so the pool is up before the clock starts.
    enqueue_all(app, chosen[:1], audience_ids)
    wait_for(lambda: stack.admin.counters().get("mapping_ok", 0) >= 1, 60, "the baseline worker")
    done_before = stack.admin.counters().get("mapping_calls", 0)
    before = sample_tree(worker.pid)

    started = time.time()
    result.enqueue_seconds, result.enqueue_cpu = enqueue_all(app, chosen, audience_ids)
    deadline = time.monotonic() + BASELINE_TIMEOUT
    while True:
        calls = stack.admin.counters().get("mapping_calls", 0) - done_before
        if calls >= len(chosen):
            break
        if time.monotonic() > deadline:
            result.error = f"only {calls} of {len(chosen)} tasks done within {BASELINE_TIMEOUT:.0f}s"
            break
        time.sleep(0.05)
    after = sample_tree(worker.pid)
    calls_log = stack.admin.calls(since=0)
    last = [c for c in calls_log[-len(chosen):] if c["code"] == 0]
    result.delivered = len(last)
    result.seconds = (max(c["time"] for c in last) if last else time.time()) - started
    result.worker = usage("baseline celery worker", before, after)
    stack.stop_pipeline()
    return result


# -- stage benchmarks ----------------------------------------------------------------------------------------


def run_stages(stack: BenchStack) -> dict[str, Any]:
    """:mod:`benchmarks.stages` against this stack's Redis and sandbox (in a process of its own)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.stages", "--json", "--sandbox-url", stack.sandbox_url,
         "--redis-url", stack.redis_url.rsplit("/", 1)[0] + "/2"],
        capture_output=True, text=True, timeout=300, env=stack.env, cwd=REPO_ROOT)
    if done.returncode != 0:
        say(f"stage benchmarks failed: {done.stderr[-500:]}")
        return {}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# -- report --------------------------------------------------------------------------------------------------


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({model}), {memory:.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def _check(ok: bool) -> str:
    return "met" if ok else "NOT met"


def print_run(result: RunResult) -> None:
    o, r = result.options, result
    intake = (f"serve --workers {o.intake_processes}" if o.intake_processes is not None
              else f"plain serve ({usable_cpus()} processes)")
    print(f"end to end: {r.events:,} events over {r.audiences:,} audiences; intake {intake}, worker concurrency "
          f"{o.workers}, flush interval {o.flush_interval:g}s, rate limit {o.rate_limit_qps:,.0f} TikTok calls/s")
    print(f"  intake while delivering: {r.intake_rate:>10,.0f} events/s  ({r.intake_seconds:.2f}s until the last "
          "200 OK, workers delivering concurrently; "
          f"{r.accepted:,} accepted, {r.retries_503} retried after 503)")
    if r.intake_alone_seconds:
        print(f"  intake alone:            {r.intake_alone_rate:>10,.0f} events/s  ({r.intake_alone_seconds:.2f}s; "
              f"the same events into a fresh stack with no workers running, {r.intake_alone_accepted:,} accepted; "
              f"intake CPU {r.intake_alone_cpu * 1e6 / max(r.events, 1):.1f} us per event)")
    print(f"  end to end:              {r.end_to_end_rate:>10,.0f} events/s  ({r.end_to_end_seconds:.2f}s from "
          "the first POST to the last batch delivered)")
    print(f"  latency:      p50 {r.latency_p50:.2f}s, p99 {r.latency_p99:.2f}s  (acceptance to delivery, per "
          "row; a batch's rows taken as accepted evenly between its first and last operation)")
    print(f"  TikTok calls: {r.requests:,} mapping requests, {r.rows_per_request:,.0f} rows per request on "
          f"average, {r.failed_requests} failed; {r.batches:,} batches in the ledger")
    print(f"  membership:   {result.membership_detail}")
    if result.error:
        print(f"  ERROR: {result.error}")
    print("  CPU seconds during the run, and peak memory per process:")
    for stage in result.stages:
        print(f"    {stage.stage:<32} {stage.cpu_seconds:7.2f} s CPU "
              f"({stage.cpu_seconds * 1e6 / max(result.events, 1):5.1f} us per event)")
        for p in stage.processes:
            print(f"      pid {p.pid:<7} {p.peak_rss_mb:7.1f} MB peak  {p.name[:70]}")
    cores = os.cpu_count() or 1
    print(f"    all stages: {result.cpu_per_event * 1e6:.1f} us of CPU per event, so about "
          f"{result.cpu_bound_rate:,.0f} events/s if {cores} cores did nothing else")
    print(f"    the machine was busy {result.machine_busy:.2f} of {cores * result.end_to_end_seconds:.2f} "
          f"core-seconds; processes outside the benchmark used {result.others_cpu:.2f} s of it")


def print_baseline(base: BaselineResult, run: RunResult) -> None:
    print(f"baseline (one Celery task per event, {base.events:,} events, same hashing, same sandbox):")
    producer_us = base.enqueue_cpu * 1e6 / max(base.events, 1)
    print(f"  delivered {base.delivered:,} in {base.seconds:.2f}s: {base.rate:,.0f} events/s; apply_async "
          f"took {base.enqueue_seconds:.2f}s ({producer_us:,.0f} us of producer CPU per event)")
    if base.worker:
        per_event = base.worker.cpu_seconds * 1e6 / max(base.delivered, 1)
        print(f"  worker CPU {base.worker.cpu_seconds:.2f}s ({per_event:,.0f} us per event)")
    if base.error:
        print(f"  ERROR: {base.error}")
    ratio = run.end_to_end_rate / base.rate if base.rate else 0.0
    print(f"  ratio: this service moves {ratio:,.1f}x the baseline's events per second")


def print_stages(stages: dict[str, Any], run: RunResult) -> None:
    if not stages:
        return
    print("stages (each in one process, so per core; waits for Redis or the sandbox count; benchmarks/stages.py):")
    for name, figure in stages.items():
        redis_cpu = f", Redis {figure['redis_us']:5.2f} us" if "redis_us" in figure else ""
        print(f"  {name:<38} {figure['rate']:>10,.0f} {figure['unit']:<9} "
              f"({figure.get('cpu_us', 0):5.2f} us of its CPU each{redis_cpu})")
    slowest = min(stages.items(), key=lambda kv: kv[1]["rate"] if kv[1]["unit"].startswith(("events",
                                                                                             "ids", "ops"))
                  and not kv[1].get("aside") else float("inf"))
    print(f"  end to end was {run.end_to_end_rate:,.0f} events/s; slowest per-event stage: {slowest[0]}")


def worker_redis_cpu_per_event(run: RunResult) -> float:
    """Worker + Redis CPU seconds per event of a run (the figure the grid's cells report)."""
    cpu = sum(s.cpu_seconds for s in run.stages if s.stage in ("worker", "redis-server"))
    return cpu / run.events if run.events else 0.0


def print_targets(run: RunResult | None, base: BaselineResult | None, grid: list[GridResult]) -> None:
    print("targets:")
    if run is not None:
        worker_rss = max((p.peak_rss_mb for s in run.stages if s.stage == "worker" for p in s.processes),
                         default=0.0)
        ratio = run.end_to_end_rate / base.rate if base and base.rate else 0.0
        how = ("plain serve and worker --concurrency 2" if run.options.intake_processes is None
               and run.options.workers == 2 else "NOT the plain commands: --intake-processes/--workers given")
        print(f"  {run.audiences:,} audiences, {run.events:,} events, end to end >= {TARGET_END_TO_END:,}/s "
              f"(stretch {TARGET_END_TO_END_STRETCH:,}) with {how}: {run.end_to_end_rate:,.0f} "
              f"{_check(run.end_to_end_rate >= TARGET_END_TO_END)}"
              f"{'; stretch met' if run.end_to_end_rate >= TARGET_END_TO_END_STRETCH else ''}")
        if base:
            print(f"  >= {TARGET_RATIO}x the one-task-per-event baseline: {ratio:,.1f}x "
                  f"{_check(ratio >= TARGET_RATIO)}")
        print(f"  intake >= {TARGET_INTAKE:,}/s: {run.intake_rate:,.0f} while delivering "
              f"{_check(run.intake_rate >= TARGET_INTAKE)}")
        if run.intake_alone_seconds:
            print(f"    (intake alone, no workers running: {run.intake_alone_rate:,.0f} "
                  f"{_check(run.intake_alone_rate >= TARGET_INTAKE)})")
        print(f"  no worker process above {TARGET_WORKER_RSS_MB} MB: largest {worker_rss:.0f} MB "
              f"{_check(worker_rss <= TARGET_WORKER_RSS_MB)}")
        print(f"  final membership exact: {_check(run.membership_exact)}")
    if grid:
        # The 10,000-audience cell's CPU per event is held against the 10-audience throughput run: the grid's
        # own 10-audience cell has 50 events, whose figure is the fixed cost of a few calls, not a per-event one.
        reference: float | None = None
        what = "the 10-audience throughput run (not run)"
        if run is not None and run.audiences == 10:
            reference, what = worker_redis_cpu_per_event(run), f"the {run.events:,}-event 10-audience run"
        for line in grid_target_lines(grid, reference, what):
            print(line)


def print_scaling(rows: list[tuple[str, RunResult]]) -> None:
    print("scaling (same events; one change at a time; 'others' = CPU s used meanwhile by processes outside it):")
    print(f"  {'run':<22}{'intake ev/s':>12}{'e2e ev/s':>11}{'p50 s':>8}{'p99 s':>8}{'requests':>10}"
          f"{'rows/req':>10}{'CPU us/ev':>10}{'others':>8}  membership")
    for label, r in rows:
        print(f"  {label:<22}{r.intake_rate:>12,.0f}{r.end_to_end_rate:>11,.0f}{r.latency_p50:>8.2f}"
              f"{r.latency_p99:>8.2f}{r.requests:>10,}{r.rows_per_request:>10,.0f}"
              f"{r.cpu_per_event * 1e6:>10.1f}{r.others_cpu:>8.1f}  "
              f"{'exact' if r.membership_exact else 'WRONG'}{'; ' + r.error if r.error else ''}")


# -- main ----------------------------------------------------------------------------------------------------


def _one_run(events: int, audiences: int, options: StackOptions) -> RunResult:
    say(f"run: {events:,} events, {audiences:,} audiences, worker concurrency {options.workers}")
    workload = build_workload(events, audiences)
    workload.serialise()
    with BenchStack(options) as stack:
        # Thousands of small audiences mean thousands of batches (and audience creations): allow longer.
        return measure(stack, workload, audiences, settle_timeout=SCALING_SETTLE_TIMEOUT)


def _grid_plan(args: argparse.Namespace) -> tuple[list[GridCell], list[SkippedCell]]:
    """The grid's cells from the flags, checked before anything runs."""
    try:
        counts = [int(n) for n in args.grid_audiences.split(",")] if args.grid_audiences else None
    except ValueError:
        raise SystemExit(f"--grid-audiences: expected comma-separated whole numbers, got {args.grid_audiences!r}"
                         ) from None
    if counts is not None and min(counts) < 1:
        raise SystemExit("--grid-audiences: every count must be at least 1")
    modes = [m.strip() for m in args.grid_modes.split(",")] if args.grid_modes else list(MODES)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"--grid-modes: unknown {', '.join(unknown)}; expected some of {', '.join(MODES)}")
    return plan_grid(counts, modes, args.grid_users, args.grid_rate, include_long=args.grid_long)


def _grid(args: argparse.Namespace, cells: list[GridCell], skipped: list[SkippedCell]
          ) -> tuple[list[GridResult], list[str]]:
    for s in skipped:
        say(f"grid: {s.cell.label} skipped: {s.reason}")
    options = grid_options(args.workers, args.intake_processes, args.flush_interval, args.grid_rate)
    results = run_grid(cells, options, args.grid_timeout)
    return results, grid_lines(results, skipped)


def main(args: argparse.Namespace) -> int:
    stop_like_ctrl_c()  # a benchmark stopped by a signal stops the stacks it started
    cells, skipped = _grid_plan(args) if not args.no_grid else ([], [])
    run: RunResult | None = None
    base: BaselineResult | None = None
    stages: dict[str, Any] = {}
    scaling: list[tuple[str, RunResult]] = []
    if not args.grid:
        run, base, stages, scaling = _throughput(args)
    grid: list[GridResult] = []
    grid_text: list[str] = []
    if not args.no_grid:
        grid, grid_text = _grid(args, cells, skipped)

    print(f"machine: {_machine()}")
    if run is not None:
        print_run(run)
        if base:
            print_baseline(base, run)
        print_stages(stages, run)
        if scaling:
            print_scaling(scaling)
    for line in grid_text:
        print(line)
    print_targets(run, base, grid)
    if args.json:
        document = {"machine": _machine(), "run": None if run is None else to_json(run), "stages": stages,
                    "baseline": None if base is None else {
                        "events": base.events, "delivered": base.delivered, "seconds": round(base.seconds, 3),
                        "events_per_s": round(base.rate), "error": base.error},
                    "scaling": [{"label": label, **to_json(r)} for label, r in scaling],
                    "grid": [grid_to_json(r) for r in grid]}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    # A benchmark reports speed rather than failing on it: a grid cell that is merely late does not fail it;
    # one whose batches went dead or whose audiences hold what the events do not describe does.
    run_ok = run is None or (run.membership_exact and not run.error)
    return 0 if run_ok and not any(r.wrong for r in grid) else 1


def _throughput(args: argparse.Namespace) -> tuple[RunResult, BaselineResult | None, dict[str, Any],
                                                     list[tuple[str, RunResult]]]:
    """The 200,000-event run, the baseline, the stage benchmarks and (with --scaling) the scaling runs."""
    options = StackOptions(workers=args.workers, intake_processes=args.intake_processes,
                           flush_interval=args.flush_interval, rate_limit_qps=args.rate_limit)
    say(f"generating {args.events:,} events over {args.audiences:,} audiences")
    workload = build_workload(args.events, args.audiences)
    workload.serialise()
    base: BaselineResult | None = None
    stages: dict[str, Any] = {}
    say("intake alone: the same events into a fresh stack with no workers")
    alone = measure_intake_alone(workload, options)
    with BenchStack(options) as stack:
        say(f"main run (logs in {stack.workdir})")
        run = measure(stack, workload, args.audiences)
        run.intake_alone_seconds, run.intake_alone_cpu, run.intake_alone_accepted = alone
        if args.baseline_events > 0:
            say(f"baseline: {args.baseline_events:,} events, one Celery task each")
            base = run_baseline(stack, workload, args.baseline_events, args.workers)
        if not args.no_stages:
            say("stage benchmarks")
            stages = run_stages(stack)
    scaling: list[tuple[str, RunResult]] = []
    if args.scaling:
        for workers in (1, 2, 4):
            opts = StackOptions(workers=workers, intake_processes=args.intake_processes,
                                flush_interval=args.flush_interval, rate_limit_qps=args.rate_limit)
            scaling.append((f"{workers} worker process(es)", _one_run(args.events, args.audiences, opts)))
        for audiences in (1, 100, 10_000):
            scaling.append((f"{audiences:,} audiences", _one_run(args.events, audiences, options)))
    return run, base, stages, scaling
