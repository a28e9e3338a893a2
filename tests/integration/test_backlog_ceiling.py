"""The backlog ceiling holds whatever the request size or concurrency: checked and written in one atomic step
(a real redis-server, a real intake process, no worker draining)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.events import engage
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

AUDIENCE = "3000000000000000001"
LIMIT = 5_000


def backlog(stack: Stack) -> int:
    return int(stack.redis.get("tta:backlog") or 0)


@pytest.fixture
def near_the_limit(stack: Stack) -> Stack:
    stack.env["TTA_BACKLOG_LIMIT"] = str(LIMIT)
    stack.start_intake()
    for start in range(0, 1_100, 100):
        status, body = stack.post("/v1/batch", {"batch": [engage("Audience Entered", i, AUDIENCE)
                                                          for i in range(start, start + 100)]})
        assert status == 200, body
    assert backlog(stack) == 1_100
    return stack


def test_a_60000_event_webhook_over_the_limit_is_refused_whole(near_the_limit: Stack) -> None:
    events = [engage("Audience Entered", i, AUDIENCE) for i in range(10_000, 70_000)]
    status, body = near_the_limit.post("/v1/webhook", events)
    assert status == 503, body
    assert body["code"] == "backlog_full" and "limit of 5,000" in body["message"]
    # Routed in slices of 2,000: the first slice fits (1,100 + 2,000), the second does not, and the answer
    # says from which event on nothing was stored.
    print(f"60,000-event webhook at 1,100 of {LIMIT:,}: {status}, backlog {backlog(near_the_limit):,}")
    assert backlog(near_the_limit) <= LIMIT
    assert f"from index {backlog(near_the_limit) - 1_100:,} on were not stored" in body["message"]


def test_40_concurrent_requests_near_the_limit_never_pass_it(near_the_limit: Stack) -> None:
    def post(n: int) -> tuple[int, Any]:
        return near_the_limit.post("/v1/batch", {"batch": [engage("Audience Entered", 100_000 + n * 200 + i, AUDIENCE)
                                                           for i in range(200)]})

    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(post, range(40)))
    accepted = [body for status, body in answers if status == 200]
    refused = [body for status, body in answers if status == 503]
    assert len(accepted) + len(refused) == 40
    assert all(body["code"] == "backlog_full" for body in refused)
    print(f"40 concurrent requests of 200 at 1,100 of {LIMIT:,}: {len(accepted)} accepted, {len(refused)} refused, "
          f"backlog {backlog(near_the_limit):,}")
    assert backlog(near_the_limit) == 1_100 + 200 * len(accepted) <= LIMIT
    assert len(accepted) >= 1  # the ceiling refuses what would pass it, not everything


def test_healthz_answers_while_the_intake_process_takes_a_16_mb_webhook(stack: Stack) -> None:
    import threading
    import time
    import urllib.request

    stack.env["TTA_MAX_REQUEST_EVENTS"] = "200000"
    stack.start_intake()
    # Compact events (the measured webhook was 109,654 events in 16 MB).
    events = [{"type": "track", "event": "Audience Entered", "userId": f"u{i}", "properties": {"k": True},
               "context": {"traits": {"email": f"u{i}@example.com"},
                           "personas": {"computation_key": "k", "external_audience_id": AUDIENCE}}}
              for i in range(75_000)]  # 15.6 MiB
    waits: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            asked = time.monotonic()
            with urllib.request.urlopen(stack.intake_url + "/healthz", timeout=10) as answer:
                assert answer.status == 200
            waits.append(time.monotonic() - asked)
            time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        status, body = stack.post("/v1/webhook", events)
    finally:
        done.set()
        prober.join()
    assert status == 200 and body["accepted"] == 75_000, body
    waits.sort()
    print(f"/healthz during a {len(events):,}-event webhook: {len(waits)} answers, "
          f"median {waits[len(waits) // 2] * 1000:.0f} ms, slowest {waits[-1] * 1000:.0f} ms")
    assert waits[-1] < 1.0  # loose: the issue measured 1.74 s with the loop blocked for the whole routing
