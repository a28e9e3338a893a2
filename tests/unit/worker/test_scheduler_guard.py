"""With no worker consuming, the scheduler stops queueing: the broker does not fill with duplicate tasks."""

from __future__ import annotations

from typing import Any

import redis

from core.settings import Settings
from worker import keys
from worker.scheduler_guard import MAX_QUEUED_TASKS, GuardedScheduler, QueueGuard


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_full_queue_holds_claims_back_and_due_audiences_stay_due(redis_client: Any, settings: Settings) -> None:
    queued = [MAX_QUEUED_TASKS]
    clock = Clock()
    dispatched: list[str] = []
    scheduler = GuardedScheduler(redis_client, settings, dispatched.append,
                                 guard=QueueGuard(lambda: queued[0], clock=clock))
    redis_client.zadd(keys.READY, {"d|1|a": 100.0})
    assert scheduler.tick(now=150.0) == []
    assert redis_client.zscore(keys.READY, "d|1|a") == 100.0  # not leased: still due, still counted
    queued[0] = 0  # a worker came and emptied the queue
    assert scheduler.tick(now=150.0) == []  # looked at most once a second
    clock.now += 1.0
    assert scheduler.tick(now=150.0) == ["d|1|a"]
    assert dispatched == ["d|1|a"]


def test_a_queue_that_cannot_be_read_does_not_stop_scheduling() -> None:
    def broken() -> int:
        raise redis.ConnectionError("broker away")

    assert QueueGuard(broken).full() is False
