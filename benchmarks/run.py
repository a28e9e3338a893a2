"""One benchmark run: a fresh stack (redis-server, sandbox, intake, workers, each a process), the workload
posted through the real HTTP intake, and everything measured until the last batch is delivered.

The stack is started and warmed up (one event delivered end to end, so Celery's pool and the intake
processes are up) before the clock starts; from then on the run is what a user's pipeline would see.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis

from benchmarks.client import post_in_order
from benchmarks.measure import (
    StageUsage,
    machine_busy_seconds,
    sample_tree,
    usage,
    weighted_percentiles,
)
from benchmarks.workload import MAX_AHEAD, Workload
from sandbox.admin import SandboxAdmin
from tiktok_audiences.local_stack import SANDBOX_ADVERTISER, LocalStack, wait_for
from worker import keys
from worker.ledger import OPEN_STATUSES, BatchRecord, Ledger

CONNECTIONS = 32
WRITE_KEY = "bench-write-key"
WARMUP_AUDIENCE = "bench_warmup"
DESTINATION = "sandbox"
SETTLE_TIMEOUT = 240.0  # a run that has not delivered everything by then is reported as failed


@dataclass(slots=True)
class StackOptions:
    workers: int = 2  # Celery pool processes of the one `worker` command
    intake_processes: int | None = None  # `serve --workers N`; None: plain `serve`, as a user starts it
    flush_interval: float = 1.0
    rate_limit_qps: float = 10_000.0  # TikTok calls per second, every worker together
    start_worker: bool = True  # False: intake only, for the "intake alone" figure (nothing is delivered)
    settings: dict[str, str] = field(default_factory=dict)  # environment settings for every process


@dataclass(slots=True)
class RunResult:
    events: int
    audiences: int
    options: StackOptions
    intake_seconds: float = 0.0  # while the workers deliver concurrently
    # "Intake alone": the same events into a fresh stack without workers (a burst absorbed into Redis).
    intake_alone_seconds: float = 0.0
    intake_alone_cpu: float = 0.0  # CPU seconds of the intake processes during that burst
    intake_alone_accepted: int = 0
    end_to_end_seconds: float = 0.0
    retries_503: int = 0
    accepted: int = 0
    latency_p50: float = 0.0
    latency_p99: float = 0.0
    batches: int = 0
    requests: int = 0
    request_rows: int = 0
    failed_requests: int = 0
    membership_exact: bool = False
    membership_detail: str = ""
    stages: list[StageUsage] = field(default_factory=list)
    machine_busy: float = 0.0  # CPU seconds the whole machine was busy during the run
    error: str = ""

    @property
    def cpu_per_event(self) -> float:
        """CPU seconds the whole pipeline (load generator included) spent per event."""
        return sum(s.cpu_seconds for s in self.stages) / self.events if self.events else 0.0

    @property
    def cpu_bound_rate(self) -> float:
        """Events per second the pipeline's CPU cost allows on this many cores with nothing else running: an
        estimate (it assumes every core busy all the time), to read the measured rate against on a shared
        machine."""
        return (os.cpu_count() or 1) / self.cpu_per_event if self.cpu_per_event else 0.0

    @property
    def others_cpu(self) -> float:
        """CPU seconds used during the run by processes that are not part of it (other work on the host)."""
        return max(0.0, self.machine_busy - sum(s.cpu_seconds for s in self.stages))

    @property
    def intake_rate(self) -> float:
        return self.events / self.intake_seconds if self.intake_seconds else 0.0

    @property
    def intake_alone_rate(self) -> float:
        return self.events / self.intake_alone_seconds if self.intake_alone_seconds else 0.0

    @property
    def end_to_end_rate(self) -> float:
        return self.events / self.end_to_end_seconds if self.end_to_end_seconds else 0.0

    @property
    def rows_per_request(self) -> float:
        return self.request_rows / self.requests if self.requests else 0.0


class BenchStack:
    """redis-server, sandbox, intake and a worker as child processes (a :class:`LocalStack`), on free ports, in
    a temporary folder."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.workdir = Path(tempfile.mkdtemp(prefix="tta-bench-"))
        # Intake and workers are its processes (stopped before a baseline); Redis and the sandbox outlive them.
        self.local = LocalStack(self.workdir, {**os.environ, "TTA_LOG_FORMAT": "json"})
        self.redis_url = ""
        self.sandbox_url = ""
        self.intake_url = ""
        self.redis_pid = 0

    def __enter__(self) -> BenchStack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def env(self) -> dict[str, str]:
        return self.local.env

    def close(self) -> None:
        self.local.stop()

    def _start(self) -> None:
        self.redis_url = self.local.start_redis()  # a real redis-server: a fake one is meaningless to time
        assert self.local.redis_server is not None
        self.redis = self.local.redis_server.client()
        self.redis_pid = int(self.redis.info("server")["process_id"])
        self.sandbox_url = self.local.start_sandbox()
        self.admin = SandboxAdmin(self.sandbox_url)
        self.local.use_sandbox()
        self.env.update({
            "TTA_WRITE_KEY": WRITE_KEY,
            "TTA_FLUSH_INTERVAL": str(self.options.flush_interval),
            "TTA_RATE_LIMIT_QPS": str(self.options.rate_limit_qps),
            **self.options.settings,
        })
        self.local.start_intake(processes=self.options.intake_processes)
        if self.options.start_worker:
            self.local.start_worker(self.options.workers)
        self.intake_url = self.local.intake_url

    def stop_pipeline(self) -> None:
        self.local.stop_processes()

    def roots(self) -> dict[str, int]:
        """The started processes by stage; each one's descendants are counted with it."""
        out = {process.name: process.pid for process in self.local.processes}
        if self.local.sandbox is not None:
            out["sandbox"] = self.local.sandbox.pid
        out["redis-server"] = self.redis_pid
        return out

    def ledger(self) -> Ledger:
        return Ledger(self.redis, delivered_retention=86400, dead_retention=86400)


async def post_all(url: str, bodies: list[bytes], connections: int = CONNECTIONS,
                   max_ahead: int = MAX_AHEAD) -> tuple[int, int]:
    """POST every body to /v1/batch over ``connections`` connections, in order (benchmarks.client says how);
    returns (accepted, 503 retries)."""
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    return await post_in_order(url, "/v1/batch", headers, bodies, connections, max_ahead)


def _settled(client: redis.Redis, ledger: Ledger) -> bool:
    counts = ledger.counts_by_status()
    backlog = int(client.get(keys.BACKLOG) or 0)
    return backlog == 0 and not any(counts[s] for s in OPEN_STATUSES)


def warm_up(stack: BenchStack) -> None:
    """One event through the whole pipeline, on an audience of its own that the measurements leave out."""
    event = {"type": "track", "event": "Audience Entered", "userId": "warmup", "messageId": "bench-warmup",
             "properties": {WARMUP_AUDIENCE: True},
             "context": {"traits": {"email": "warmup@example.com"},
                         "personas": {"computation_key": WARMUP_AUDIENCE}}}
    body = orjson.dumps({"batch": [event]})
    # Intake processes share the port: a few requests reach each of them.
    asyncio.run(post_all(stack.intake_url, [body] * 8, connections=8))
    ledger = stack.ledger()
    wait_for(lambda: ledger.counts_by_status()["delivered"] > 0 and _settled(stack.redis, ledger), 60,
             "the warm-up event's delivery")


def _delivered(ledger: Ledger) -> list[BatchRecord]:
    records = ledger.list(status="delivered", limit=1_000_000)
    return [r for r in records if not r.target.endswith("@" + WARMUP_AUDIENCE)]


def check_membership(stack: BenchStack, expected: dict[str, set[str]]) -> tuple[bool, str]:
    """Whether every audience in the sandbox holds exactly the members the events describe."""
    wrong = missing = extra = 0
    for key, members in expected.items():
        raw = stack.redis.get(keys.created_audience(DESTINATION, SANDBOX_ADVERTISER, key))
        actual = set(stack.admin.members(raw.decode())) if raw else set()  # type: ignore[union-attr]
        if actual != members:
            wrong += 1
            missing += len(members - actual)
            extra += len(actual - members)
    total = sum(len(m) for m in expected.values())
    if wrong:
        return False, (f"{wrong} of {len(expected)} audiences differ: {missing} identifiers missing, "
                       f"{extra} extra")
    return True, f"{len(expected)} audiences, {total:,} identifiers: exact match"


def measure(stack: BenchStack, workload: Workload, audiences: int,
            settle_timeout: float = SETTLE_TIMEOUT) -> RunResult:
    result = RunResult(len(workload.events), audiences, stack.options)
    bodies = workload.bodies or workload.serialise()
    warm_up(stack)
    calls_before = int(stack.admin.state()["last_call_seq"])
    roots = stack.roots()
    before = {stage: sample_tree(pid) for stage, pid in roots.items()}
    client_cpu = time.process_time()
    busy = machine_busy_seconds()

    started = time.time()
    result.accepted, result.retries_503 = asyncio.run(post_all(stack.intake_url, bodies))
    result.intake_seconds = time.time() - started
    client_cpu = time.process_time() - client_cpu

    ledger = stack.ledger()
    deadline = time.monotonic() + settle_timeout
    while not _settled(stack.redis, ledger):
        stack.local.check()
        if time.monotonic() > deadline:
            result.error = f"not delivered within {settle_timeout:.0f}s"
            break
        time.sleep(0.02)
    after = {stage: sample_tree(pid) for stage, pid in roots.items()}
    result.machine_busy = machine_busy_seconds() - busy

    delivered = _delivered(ledger)
    result.batches = len(delivered)
    if delivered:
        result.end_to_end_seconds = max(r.finished_at or 0.0 for r in delivered) - started
        spans = ((r.accepted_first or 0.0, r.accepted_last or 0.0, r.finished_at or 0.0, r.rows)
                 for r in delivered)
        p50, p99 = weighted_percentiles(spans, (0.50, 0.99))
        result.latency_p50, result.latency_p99 = p50, p99
    calls = [c for c in stack.admin.calls(since=calls_before)]
    ok = [c for c in calls if c["code"] == 0 and c["http_status"] == 200]
    result.requests, result.request_rows = len(ok), sum(c["rows"] for c in ok)
    result.failed_requests = len(calls) - len(ok)
    result.stages = [usage(stage, before[stage], after[stage]) for stage in roots]
    result.stages.append(StageUsage("load generator (bench process)", client_cpu))
    result.membership_exact, result.membership_detail = check_membership(stack, workload.expected)
    return result


def measure_intake_alone(workload: Workload, options: StackOptions) -> tuple[float, float, int]:
    """Intake alone: the workload posted to a fresh stack that has no workers, so intake has both cores to
    itself and only absorbs the burst into Redis. Returns (seconds from the first POST to the last 200 OK,
    intake CPU seconds meanwhile, events accepted)."""
    bodies = workload.bodies or workload.serialise()
    alone = StackOptions(workers=options.workers, intake_processes=options.intake_processes,
                         flush_interval=options.flush_interval, rate_limit_qps=options.rate_limit_qps,
                         start_worker=False)
    with BenchStack(alone) as stack:
        warm = orjson.dumps({"batch": [{"type": "track", "event": "Audience Entered", "userId": "warmup",
                                        "properties": {WARMUP_AUDIENCE: True},
                                        "context": {"traits": {"email": "warmup@example.com"},
                                                    "personas": {"computation_key": WARMUP_AUDIENCE}}}]})
        asyncio.run(post_all(stack.intake_url, [warm] * 8, connections=8))  # every intake process warm
        root = stack.roots()["intake"]
        before = sample_tree(root)
        started = time.time()
        accepted, _ = asyncio.run(post_all(stack.intake_url, bodies))
        seconds = time.time() - started
        cpu = usage("intake", before, sample_tree(root)).cpu_seconds
    return seconds, cpu, accepted


def to_json(result: RunResult) -> dict[str, Any]:
    return {
        "events": result.events, "audiences": result.audiences,
        "workers": result.options.workers, "intake_processes": result.options.intake_processes,
        "flush_interval": result.options.flush_interval,
        "intake_seconds": round(result.intake_seconds, 3), "intake_events_per_s": round(result.intake_rate),
        "intake_alone_seconds": round(result.intake_alone_seconds, 3),
        "intake_alone_events_per_s": round(result.intake_alone_rate),
        "intake_alone_cpu_us_per_event": round(result.intake_alone_cpu * 1e6 / max(result.events, 1), 1),
        "end_to_end_seconds": round(result.end_to_end_seconds, 3),
        "end_to_end_events_per_s": round(result.end_to_end_rate),
        "latency_p50_s": round(result.latency_p50, 3), "latency_p99_s": round(result.latency_p99, 3),
        "batches": result.batches, "requests": result.requests,
        "rows_per_request": round(result.rows_per_request),
        "failed_requests": result.failed_requests, "retries_503": result.retries_503,
        "membership_exact": result.membership_exact, "membership": result.membership_detail,
        "cpu_seconds": {s.stage: round(s.cpu_seconds, 2) for s in result.stages},
        "cpu_us_per_event": round(result.cpu_per_event * 1e6, 1),
        "cpu_bound_events_per_s": round(result.cpu_bound_rate),
        "machine_busy_cpu_seconds": round(result.machine_busy, 2),
        "other_processes_cpu_seconds": round(result.others_cpu, 2),
        "peak_rss_mb": {f"{s.stage}:{p.pid} {p.name}": round(p.peak_rss_mb, 1)
                        for s in result.stages for p in s.processes},
        "error": result.error,
    }
