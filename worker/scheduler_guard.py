"""Claiming nothing while the broker's queue is already long: scale to zero without a pile of duplicates.

With no worker consuming (scaled to zero, or all of them down), every claim the scheduler makes becomes a task
that waits in the broker, and when its lease runs out the same audience is claimed and queued again: a night
at zero workers would leave thousands of duplicate tasks per audience for the first worker to wade through.
So while the drain queue holds :data:`MAX_QUEUED_TASKS` or more, the scheduler claims nothing; the audiences
stay due in the ready index (and count in ``tta_due_targets``, which is what brings workers back).

Wraps :class:`worker.scheduler.Scheduler` from outside (its ``tick``), looking at the queue's length at most
once a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
import structlog

from worker.scheduler import Scheduler

log = structlog.get_logger(__name__)

MAX_QUEUED_TASKS = 200
_LOOK_EVERY = 1.0


class QueueGuard:
    def __init__(self, queued: Callable[[], int], limit: int = MAX_QUEUED_TASKS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._queued = queued
        self._limit = limit
        self._clock = clock
        self._next_look = 0.0
        self._full = False

    def full(self) -> bool:
        now = self._clock()
        if now >= self._next_look:
            self._next_look = now + _LOOK_EVERY
            try:
                full = self._queued() >= self._limit
            except redis.RedisError:
                full = False  # the claim itself will meet the same error and say so
            if full != self._full:
                log.warning("scheduler_holding_back" if full else "scheduler_resuming", limit=self._limit)
            self._full = full
        return self._full


class GuardedScheduler(Scheduler):
    """A :class:`Scheduler` that claims nothing while ``guard`` says the broker's queue is full."""

    def __init__(self, *args: Any, guard: QueueGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard

    def tick(self, now: float | None = None) -> list[str]:
        if self._guard.full():
            return []
        return super().tick(now)
