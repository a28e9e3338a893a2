"""The backlog ceiling holds whatever the request size or concurrency: checked and written in one atomic step
(a real redis-server, a real intake process, no worker draining)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.conftest import Stack
from tests.integration.test_core_pipeline import engage

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
    assert backlog(near_the_limit) == 1_100 + 200 * len(accepted) <= LIMIT
    assert len(accepted) >= 1  # the ceiling refuses what would pass it, not everything
