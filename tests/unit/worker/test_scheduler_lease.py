"""One active scheduler for the fleet: the lease is held by one, renewed by it, taken over when it lapses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import fakeredis

from worker.scheduler_lease import LEASE_KEY, SchedulerLease, run_under_lease


def test_one_holder_at_a_time() -> None:
    client = fakeredis.FakeRedis()
    first, second = SchedulerLease(client, 5, "a:1"), SchedulerLease(client, 5, "b:2")
    assert first.acquire()
    assert not second.acquire()
    assert first.renew() and first.current_holder() == "a:1"


def test_a_lapsed_lease_is_taken_over_and_the_old_holder_cannot_renew_it() -> None:
    client = fakeredis.FakeRedis()
    first, second = SchedulerLease(client, 5, "a:1"), SchedulerLease(client, 5, "b:2")
    assert first.acquire()
    client.delete(LEASE_KEY)  # as if its TTL ran out
    assert second.acquire()
    assert not first.renew()


def test_a_release_hands_over_at_once_but_never_anothers_lease() -> None:
    client = fakeredis.FakeRedis()
    first, second = SchedulerLease(client, 5, "a:1"), SchedulerLease(client, 5, "b:2")
    assert first.acquire()
    second.release()
    assert first.current_holder() == "a:1"
    first.release()
    assert second.acquire()


def test_only_the_holder_schedules_and_a_standby_takes_over_when_it_stops() -> None:
    client = fakeredis.FakeRedis()
    running: list[str] = []
    stops = {name: threading.Event() for name in ("a", "b")}

    def schedule_as(name: str) -> Callable[[threading.Event], None]:
        def schedule(lost: threading.Event) -> None:
            running.append(name)
            lost.wait()
            running.remove(name)
        return schedule

    threads = [threading.Thread(target=run_under_lease,
                                args=(SchedulerLease(client, 0.6, name), schedule_as(name), stops[name]))
               for name in ("a", "b")]
    for thread in threads:
        thread.start()
        time.sleep(0.2)
    time.sleep(0.5)  # past one TTL: the holder has renewed
    assert running == ["a"]
    stops["a"].set()
    deadline = time.monotonic() + 3
    while running != ["b"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running == ["b"]
    stops["b"].set()
    for thread in threads:
        thread.join(3)
    assert running == [] and client.get(LEASE_KEY) is None
