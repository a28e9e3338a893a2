"""The scheduler: due targets become drain tasks under a lease, and nothing the broker does stops it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kombu.exceptions import OperationalError

from core.settings import Settings
from worker import keys
from worker.scheduler import Scheduler


def test_a_due_target_is_dispatched_once_and_leased_past_the_lock(redis_client: Any,
                                                                  settings: Settings) -> None:
    dispatched: list[str] = []
    scheduler = Scheduler(redis_client, settings, dispatched.append)
    redis_client.zadd(keys.READY, {"d|1|a": 100.0, "d|1|b": 200.0})
    assert scheduler.tick(now=150.0) == ["d|1|a"]
    assert scheduler.tick(now=150.0) == []
    assert dispatched == ["d|1|a"]
    assert redis_client.zscore(keys.READY, "d|1|a") == 150.0 + settings.scheduler_lease
    assert settings.scheduler_lease > settings.lock_ttl


def test_once_the_intake_goes_quiet_waiting_targets_are_claimed_early_once(redis_client: Any,
                                                                          settings: Settings) -> None:
    settings = settings.model_copy(update={"flush_interval": 2.0, "quiet_flush": 0.25})
    dispatched: list[str] = []
    scheduler = Scheduler(redis_client, settings, dispatched.append)
    # Waiting out its flush interval (due in 1.5 s), and a target due much later (a backoff, say).
    redis_client.zadd(keys.READY, {"d|1|a": 101.5, "d|1|b": 400.0})
    redis_client.set(keys.INTAKE_RECENT, 1)  # the intake is busy: nothing is claimed early
    assert scheduler.tick(now=100.0) == []
    redis_client.delete(keys.INTAKE_RECENT)  # ...and then it went quiet
    assert scheduler.tick(now=100.1) == ["d|1|a"]
    redis_client.zadd(keys.READY, {"d|1|a": 101.9})  # its drain disagreed and put it back
    assert scheduler.tick(now=100.2) == []  # one sweep per quiet spell
    redis_client.delete(keys.QUIET_SWEPT)  # an enqueue starts a new spell
    assert scheduler.tick(now=100.3) == ["d|1|a"]
    assert dispatched == ["d|1|a", "d|1|a"]


def test_targets_the_broker_refused_are_due_again_at_once(redis_client: Any, settings: Settings) -> None:
    def refuse(target: str) -> None:
        if target == "d|1|b":
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    scheduler = Scheduler(redis_client, settings, refuse)
    redis_client.zadd(keys.READY, {"d|1|a": 1.0, "d|1|b": 2.0, "d|1|c": 3.0})
    with pytest.raises(OperationalError):
        scheduler.tick(now=10.0)
    assert redis_client.zscore(keys.READY, "d|1|a") == 10.0 + settings.scheduler_lease  # dispatched
    assert redis_client.zscore(keys.READY, "d|1|b") == 10.0
    assert redis_client.zscore(keys.READY, "d|1|c") == 10.0


def test_the_scheduler_keeps_running_through_broker_errors(redis_client: Any, settings: Settings) -> None:
    dispatched: list[str] = []
    failures = [OperationalError("broker away")]

    def dispatch(target: str) -> None:
        if failures:
            raise failures.pop()
        dispatched.append(target)

    stop = threading.Event()
    scheduler = Scheduler(redis_client, settings, dispatch)
    runner = threading.Thread(target=scheduler.run, args=(stop,), daemon=True)
    redis_client.zadd(keys.READY, {"d|1|a": time.time() - 1})
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not dispatched and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        runner.join(5)
    assert dispatched == ["d|1|a"]
    assert not runner.is_alive()


def test_many_due_targets_go_out_several_to_a_task(redis_client: Any, settings: Settings) -> None:
    single: list[str] = []
    grouped: list[list[str]] = []
    scheduler = Scheduler(redis_client, settings, single.append, dispatch_many=grouped.append, spread=2)
    redis_client.zadd(keys.READY, {f"d|1|{n}": 100.0 for n in range(80)})
    claimed = scheduler.tick(now=150.0)
    assert len(claimed) == 80 and not single
    assert [t for group in grouped for t in group] == claimed
    assert len(grouped) == 8
    redis_client.zadd(keys.READY, {"d|1|x": 100.0, "d|1|y": 100.0})  # a few: one task each, as before
    assert scheduler.tick(now=150.0) == ["d|1|x", "d|1|y"]
    assert single == ["d|1|x", "d|1|y"] and len(grouped) == 8
