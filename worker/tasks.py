"""The Celery tasks, registered by :func:`register_tasks` on the app worker.celery_app's factory makes.

Each pool process keeps one asyncio loop, one aiohttp session and one Redis pool (a :class:`TaskRuntime`),
made at its first task from the Settings the app was made from: after the fork, since none of them survives
one.
"""

from __future__ import annotations

import asyncio

import structlog
from celery import Celery
from celery.signals import worker_process_shutdown
from redis.exceptions import OutOfMemoryError

from core.heap import settle_heap
from core.redis_memory import OutOfMemoryEpisode
from core.settings import Settings
from worker import keys, shutdown
from worker.context import WorkerContext
from worker.creates import process_creates
from worker.lane import OUT_OF_MEMORY, drain_lanes

log = structlog.get_logger(__name__)

DRAIN_TASK = "tta.drain"
CREATE_TASK = "tta.create_audiences"  # legacy createAudience requests (worker.creates)


class TaskRuntime:
    """What one pool process runs its tasks with: an event loop and a WorkerContext built from ``settings``
    (those of the command that started the worker), made at the first task and closed when the process ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: WorkerContext | None = None
        # Redis out of memory is a condition, not a crash: tasks report it once per episode and return; the
        # scheduler's lease brings their targets back, and Celery's late ack (which Redis may refuse too) is
        # retried by the consumer.
        self.memory = OutOfMemoryEpisode("worker")

    def get(self) -> tuple[asyncio.AbstractEventLoop, WorkerContext]:
        if self._loop is None or self._context is None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._context = WorkerContext.build(self.settings)
            settle_heap()  # drains allocate heavily and make no cycles (core.heap)
            # SIGTERM to the whole process group must not kill a batch midway (worker.shutdown). Installed here,
            # at the first task, because the pool replaces any handler set while the process starts.
            shutdown.stop_on_sigterm()
        return self._loop, self._context

    def close(self, **_: object) -> None:
        if self._loop is not None and self._context is not None:
            self._loop.run_until_complete(self._context.client.close())
            self._loop.close()
        self._loop = self._context = None


def register_tasks(app: Celery, settings: Settings) -> TaskRuntime:
    """Register ``tta.drain`` and ``tta.create_audiences`` on ``app`` only (not shared with other apps), run
    with a :class:`TaskRuntime` of ``settings``; returns that runtime."""
    runtime = TaskRuntime(settings)
    worker_process_shutdown.connect(runtime.close)  # weakly: the tasks below keep the runtime alive

    @app.task(name=DRAIN_TASK, ignore_result=True, shared=False)
    def drain(lanes: str | list[str]) -> list[str]:
        """Drain one lane, or several (drained concurrently: worker.lane). A name with ``|`` is a target (a
        message sent before lanes existed): its lane is drained."""
        loop, ctx = runtime.get()
        names = [lanes] if isinstance(lanes, str) else list(lanes)
        unique = list(dict.fromkeys(keys.lane_of(name) for name in names))
        if shutdown.requested():  # stopping: leave the work to another worker rather than start it
            shutdown.hand_back(ctx.redis, unique)
            return [shutdown.HANDED_BACK] * len(unique)
        outcome = loop.run_until_complete(
            shutdown.within_grace(drain_lanes(ctx, unique), ctx.redis, unique, ctx.settings.shutdown_grace))
        outcomes = [outcome] * len(unique) if isinstance(outcome, str) else outcome
        if OUT_OF_MEMORY in outcomes:
            runtime.memory.note(_OutOfMemory(), log)
        else:
            runtime.memory.note_success(log)
        log.debug("lanes_drained", lanes=len(unique), outcomes=outcomes)
        return outcomes

    @app.task(name=CREATE_TASK, ignore_result=True, shared=False)
    def create_audiences() -> int:
        """Work through the legacy createAudience stream once; returns how many audiences were created."""
        loop, ctx = runtime.get()
        try:
            outcome = loop.run_until_complete(process_creates(ctx))
        except Exception as exc:
            if not runtime.memory.note(exc, log):
                raise
            return 0
        log.debug("creates_processed", created=outcome.created, duplicates=outcome.duplicates,
                  failed=outcome.failed, waiting=outcome.waiting, busy=outcome.busy)
        return outcome.created

    return runtime


class _OutOfMemory(OutOfMemoryError):
    """Stands for the out-of-memory errors drain_lanes reported as outcomes."""
