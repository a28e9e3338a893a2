"""A stop asked for: no new work starts, work in flight gets the grace, then is cancelled and handed back."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import fakeredis
import pytest

from worker import keys, shutdown


@pytest.fixture(autouse=True)
def running() -> Iterator[None]:
    shutdown.reset()
    yield
    shutdown.reset()


def test_nothing_is_cut_short_while_no_stop_is_asked_for() -> None:
    client = fakeredis.FakeRedis()
    assert asyncio.run(shutdown.within_grace(asyncio.sleep(0.2, "done"), client, ["t|1|2"], 0.0)) == "done"


def test_work_that_finishes_within_the_grace_keeps_its_outcome() -> None:
    client = fakeredis.FakeRedis()
    shutdown.request()
    assert asyncio.run(shutdown.within_grace(asyncio.sleep(0.2, "done"), client, ["t|1|2"], 5.0)) == "done"


def test_work_past_the_grace_is_cancelled_and_its_targets_are_due_at_once() -> None:
    client = fakeredis.FakeRedis()
    client.zadd(keys.READY, {"t|1|2": time.time() + 50})  # claimed: a lease ahead
    cancelled = []

    async def slow() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "done"

    shutdown.request()
    outcome = asyncio.run(shutdown.within_grace(slow(), client, ["t|1|2"], 0.3))
    assert outcome == shutdown.HANDED_BACK and cancelled == [True]
    score = client.zscore(keys.READY, "t|1|2")
    assert score is not None and score <= time.time()


def test_sigterm_in_a_pool_process_asks_for_the_stop_instead_of_killing_it() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        shutdown.stop_on_sigterm()
        os.kill(os.getpid(), signal.SIGTERM)
        assert shutdown.requested()
        assert shutdown.deadline(20) <= time.time() + 20
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_stop_is_seen_by_processes_forked_before_it() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: waits for the parent's request
        try:
            deadline = time.monotonic() + 5
            while not shutdown.requested() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.write(write, b"1" if shutdown.requested() else b"0")
        finally:
            os._exit(0)
    shutdown.request()
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        seen = answer.read()
    os.waitpid(pid, 0)
    assert seen == b"1"
