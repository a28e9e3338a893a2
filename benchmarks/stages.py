"""Stage benchmarks: what each step of the pipeline does per second on one core, to set the end-to-end figure
of ``python -m benchmarks`` against its slowest stage.

    .venv/bin/python -m benchmarks.stages [--events N] [--json] [--redis-url URL --sandbox-url URL]

Without URLs it starts its own redis-server and sandbox (and stops them). Stages, each measured in this one
process: items per second of wall time (one process: per core, waits for Redis and the sandbox included) and
this process's CPU per item:

- ``hashing``: normalise + SHA-256 distinct emails, and phones (E.164 first);
- ``routing``: envelope validation + routing (mappings, triggers, hashing) of Engage events, no Redis;
- ``enqueue (intake, 100-event requests)``: the intake's whole per-request work against a real Redis;
- ``enqueue (operations)``: the queue contract alone, 100 already-hashed operations per round trip;
- ``drain``: the worker's drain of the enqueued operations (read, collapse, plan, ledger, wire body, POST to
  the sandbox, membership, acknowledge), in this process against the sandbox;
- ``drain (10,000 audiences x 5)``: the rate-limited grid's largest existing-audience cell without its rate
  limit, intake then drain in this process (audiences seeded at the sandbox first): what grows with the
  number of audiences, apart from the cell's processes and its wait for the rate limit;
- ``wire body``: building a 10,000-row /segment/mapping/ body.

The enqueue and drain stages also report Redis's CPU per item (``INFO cpu`` of the server, whose other
clients are idle meanwhile). Not collected by pytest (it lives outside ``tests/``) and not timed against
thresholds: it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import redis

from benchmarks.grid import EXISTING, GridCell
from benchmarks.grid_run import build_grid_workload, grid_key, seed_keys
from benchmarks.workload import build_workload
from core.destinations import load_destinations
from core.heap import settle_heap
from core.logging import configure_logging
from core.redis_client import LOCAL, redis_from_url
from core.settings import Settings
from producer.events import validate_event
from producer.identifiers import hash_email, phone_hasher
from producer.intake import SyncIntake
from producer.routing import Router
from tiktok_audiences.local_stack import SANDBOX_ADVERTISER, SANDBOX_TOKEN, LocalStack, sandbox_destinations
from worker import keys
from worker.context import WorkerContext
from worker.keys import Target
from worker.lane import LaneDrain
from worker.operations import Operation
from worker.queue import enqueue
from worker.tiktok.wire import mapping_body

Figure = dict[str, Any]
MANY_AUDIENCES = 10_000


def _rate(count: int, run: Callable[[], object], unit: str, note: str = "") -> Figure:
    """``count`` items done by ``run``: per second of wall time, and CPU µs of this process per item (the rest
    of the wall time is spent waiting for Redis or the sandbox)."""
    started, cpu = time.perf_counter(), time.process_time()
    run()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"rate": count / seconds, "unit": unit, "count": count, "seconds": round(seconds, 3),
            "cpu_us": round(cpu * 1e6 / count, 2), "note": note}


def hashing(n: int) -> dict[str, Figure]:
    emails = [f"Person.{i}+tag@Example.com" for i in range(n)]
    phones = [f"+1 (415) {200 + (i // 10_000) % 800}-{i % 10_000:04d}" for i in range(n)]
    hash_phone = phone_hasher("e164", "US")
    return {
        "hashing emails": _rate(n, lambda: [hash_email(e) for e in emails], "ids/s"),
        "hashing phones (E.164)": _rate(n, lambda: [hash_phone(p) for p in phones], "ids/s"),
    }


def routing(router: Router, events: list[dict[str, Any]]) -> Figure:
    def run() -> None:
        for event in events:
            router.route(validate_event(event))

    return _rate(len(events), run, "events/s", "validate + route (+ hash), no I/O")


def _redis_cpu(client: redis.Redis) -> float:
    """Redis's CPU seconds so far, server-wide."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _with_redis(client: redis.Redis, count: int, measure: Callable[[], Figure]) -> Figure:
    """``measure``'s figure, with Redis's CPU per item while it ran (``redis_us``)."""
    before = _redis_cpu(client)
    figure = measure()
    figure["redis_us"] = round((_redis_cpu(client) - before) * 1e6 / count, 2)
    return figure


def enqueue_intake(router: Router, client: redis.Redis, settings: Settings, bodies: list[bytes],
                   events: int) -> Figure:
    intake = SyncIntake(router, client, settings)

    def run() -> None:
        for body in bodies:
            intake.accept(orjson.loads(body)["batch"])

    return _with_redis(client, events, lambda: _rate(
        events, run, "events/s", "orjson + validate + route + one Redis round trip per request"))


def enqueue_operations(client: redis.Redis, n: int) -> Figure:
    target = Target("stage", SANDBOX_ADVERTISER, "enqueue")
    ops = [Operation(target, "add", email=f"{i:064x}") for i in range(n)]

    def run() -> None:
        for start in range(0, n, 100):
            enqueue(client, ops[start : start + 100], flush_interval=1.0, batch_size=10_000)

    figure = _rate(n, run, "ops/s", "100 hashed operations per round trip")
    # Forget the target again, so the drain stage measures the intake stage's operations only.
    client.delete(keys.stream(target.name), keys.pending_count(target.name))
    client.zrem(keys.lane_due(target.lane), target.name)
    client.zrem(keys.READY, target.lane)
    client.srem(keys.TARGETS, target.name)
    client.decrby(keys.BACKLOG, n)
    return figure


def drain(client: redis.Redis, settings: Settings, rows: int) -> Figure:
    ctx = WorkerContext.build(settings, client=client)
    loop = asyncio.new_event_loop()
    lanes = {keys.lane_of(t.decode()) for t in client.smembers(keys.TARGETS)}  # type: ignore[union-attr]

    def run() -> None:
        for lane in lanes:
            while loop.run_until_complete(LaneDrain(ctx, lane).run()) == "drained":
                pass

    try:
        return _with_redis(client, rows, lambda: _rate(
            rows, run, "ops/s", "operations drained: read, plan, ledger, POST to the sandbox, ack"))
    finally:
        loop.run_until_complete(ctx.client.close())
        loop.close()


def drain_many_audiences(router: Router, client: redis.Redis, settings: Settings, sandbox_url: str) -> Figure:
    """The grid's 10,000-audience existing cell, intake then drain, unlimited: its events' intake Redis work
    and the drain, CPU per event of this process (the drain) and of Redis (intake and drain)."""
    cell = GridCell(MANY_AUDIENCES, EXISTING)
    workload = build_grid_workload(cell, asyncio.run(seed_keys(sandbox_url, [grid_key(a)
                                                                               for a in range(cell.audiences)])))
    client.flushdb()
    # As in the grid, intake's cap on new audiences per minute is off: this stage brings 10,000 at once.
    intake = SyncIntake(router, client, settings.model_copy(update={"new_audiences_per_minute": 0}))
    before = _redis_cpu(client)
    for body in workload.bodies:
        intake.accept(orjson.loads(body)["batch"])
    intake_redis = _redis_cpu(client) - before
    accepted = int(client.get(keys.BACKLOG) or 0)
    if accepted != cell.events:
        raise RuntimeError(f"intake took {accepted:,} of the stage's {cell.events:,} operations")
    figure = drain(client, settings, cell.events)
    figure["redis_us"] = round(figure["redis_us"] + intake_redis * 1e6 / cell.events, 2)
    figure["note"] = "the grid's largest existing cell, no rate limit: Redis counts its intake writes too"
    figure["aside"] = True  # not a stage of the 10-audience run: left out of its slowest stage
    client.flushdb()
    return figure


def wire(rows: int = 10_000) -> Figure:
    cells = [{"EMAIL_SHA256": f"{i:064x}", **({"PHONE_SHA256": f"{i + 1:064x}"} if i % 5 == 0 else {})}
             for i in range(rows)]
    repeat = 20
    return _rate(rows * repeat, lambda: [mapping_body(SANDBOX_ADVERTISER, "add", "1", cells)
                                         for _ in range(repeat)], "rows/s", "10,000-row mapping bodies")


def run_stages(redis_url: str, sandbox_url: str, events: int, workdir: Path) -> dict[str, Figure]:
    config = workdir / "destinations.yaml"
    sandbox_destinations(config)
    os.environ["TIKTOK_ACCESS_TOKEN"] = SANDBOX_TOKEN
    settings = Settings(redis_url=redis_url, tiktok_api_base_url=sandbox_url, config_path=str(config),
                        flush_interval=0.001, rate_limit_qps=100_000, log_level="warning")
    configure_logging(settings)  # log lines go to stderr, never into --json's stdout
    router = Router.from_destinations(load_destinations(str(config)))
    client = redis_from_url(redis_url, LOCAL)
    client.flushdb()
    workload = build_workload(events, 10)
    bodies = workload.serialise()
    settle_heap()  # as intake and worker processes do after start-up (core.heap)
    figures = hashing(events)
    figures["routing"] = routing(router, workload.events)
    figures["enqueue (intake, 100-event requests)"] = enqueue_intake(router, client, settings, bodies, events)
    figures["enqueue (operations)"] = enqueue_operations(client, events)
    operations = int(client.get(keys.BACKLOG) or 0)
    figures["drain"] = drain(client, settings, operations)
    figures["wire body"] = wire()
    figures[f"drain ({MANY_AUDIENCES:,} audiences x 5)"] = drain_many_audiences(router, client, settings,
                                                                                sandbox_url)
    client.flushdb()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--redis-url", help="a Redis to use (its database is flushed)")
    parser.add_argument("--sandbox-url", help="a running sandbox")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tta-stages-"))
    with LocalStack(workdir) as stack:
        redis_url = args.redis_url or stack.start_redis()
        sandbox_url = args.sandbox_url or stack.start_sandbox()
        figures = run_stages(redis_url, sandbox_url, args.events, workdir)
    if args.json:
        print(json.dumps(figures))
    else:
        for name, figure in figures.items():
            redis_cpu = f" + {figure['redis_us']:5.2f} us Redis" if "redis_us" in figure else ""
            print(f"{name:<38} {figure['rate']:>10,.0f} {figure['unit']:<9} {figure['cpu_us']:6.2f} us CPU each"
                  f"{redis_cpu}  {figure['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
