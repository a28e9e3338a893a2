"""Celery tasks. Each worker child keeps one asyncio loop, one aiohttp session and one Redis pool, made after
the fork (none of them survives one)."""

from __future__ import annotations

import asyncio

import structlog
from celery.signals import worker_process_shutdown
from redis.exceptions import OutOfMemoryError

from core.heap import settle_heap
from core.redis_memory import OutOfMemoryEpisode
from core.settings import get_settings
from worker import keys, shutdown
from worker.celery_app import CREATE_TASK, DRAIN_TASK, app
from worker.context import WorkerContext
from worker.creates import process_creates
from worker.lane import OUT_OF_MEMORY, drain_lanes

log = structlog.get_logger(__name__)

_loop: asyncio.AbstractEventLoop | None = None
_context: WorkerContext | None = None
# Redis out of memory is a condition, not a crash: tasks report it once per episode and return; the scheduler's
# lease brings their targets back, and Celery's late ack (which Redis may refuse too) is retried by the consumer.
_memory = OutOfMemoryEpisode("worker")


def _runtime() -> tuple[asyncio.AbstractEventLoop, WorkerContext]:
    global _loop, _context
    if _loop is None or _context is None:
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
        _context = WorkerContext.build(get_settings())
        settle_heap()  # drains allocate heavily and make no cycles (core.heap)
        # SIGTERM to the whole process group must not kill a batch midway (worker.shutdown). Installed here, at
        # the first task, because the pool replaces any handler set while the process starts.
        shutdown.stop_on_sigterm()
    return _loop, _context


@worker_process_shutdown.connect
def _close_runtime(**_: object) -> None:
    if _loop is not None and _context is not None:
        _loop.run_until_complete(_context.client.close())


@app.task(name=DRAIN_TASK, ignore_result=True)
def drain(lanes: str | list[str]) -> list[str]:
    """Drain one lane, or several (drained concurrently: worker.lane). A name with ``|`` is a target (a message
    sent before lanes existed): its lane is drained."""
    loop, ctx = _runtime()
    names = [lanes] if isinstance(lanes, str) else list(lanes)
    unique = list(dict.fromkeys(keys.lane_of(name) for name in names))
    if shutdown.requested():  # stopping: leave the work to another worker rather than start it
        shutdown.hand_back(ctx.redis, unique)
        return [shutdown.HANDED_BACK] * len(unique)
    outcome = loop.run_until_complete(
        shutdown.within_grace(drain_lanes(ctx, unique), ctx.redis, unique, ctx.settings.shutdown_grace))
    outcomes = [outcome] * len(unique) if isinstance(outcome, str) else outcome
    if OUT_OF_MEMORY in outcomes:
        _memory.note(_OutOfMemory(), log)
    else:
        _memory.note_success(log)
    log.debug("lanes_drained", lanes=len(unique), outcomes=outcomes)
    return outcomes


@app.task(name=CREATE_TASK, ignore_result=True)
def create_audiences() -> int:
    """Work through the legacy createAudience stream once; returns how many audiences were created."""
    loop, ctx = _runtime()
    try:
        outcome = loop.run_until_complete(process_creates(ctx))
    except Exception as exc:
        if not _memory.note(exc, log):
            raise
        return 0
    log.debug("creates_processed", created=outcome.created, duplicates=outcome.duplicates,
              failed=outcome.failed, waiting=outcome.waiting, busy=outcome.busy)
    return outcome.created


class _OutOfMemory(OutOfMemoryError):
    """Stands for the out-of-memory errors drain_targets reported as outcomes."""
