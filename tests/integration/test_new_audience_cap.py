"""The new-audience cap holds across intake processes (``serve --workers N``): it is counted in Redis."""

from __future__ import annotations

import time

import pytest

from tests.support.stack import Stack
from worker import keys

pytestmark = pytest.mark.integration

CAP = 10


def entered(i: int, key: str) -> dict[str, object]:
    return {"type": "track", "event": "Audience Entered", "userId": f"u{i}", "messageId": f"m{i}",
            "properties": {key: True},
            "context": {"traits": {"email": f"user{i}@example.com"}, "personas": {"computation_key": key}}}


def test_two_intake_processes_admit_the_cap_of_new_audiences_between_them_not_each(stack: Stack) -> None:
    stack.env["TTA_NEW_AUDIENCES_PER_MINUTE"] = str(CAP)
    stack.start_intake(processes=2)
    if time.time() % 60 > 40:  # keep the requests inside one wall-clock minute, the cap's window
        time.sleep(61 - time.time() % 60)
    # One new audience per request, each on a connection of its own, which the kernel hands to either process
    # (with 40 of them both take some: one process taking all has odds of 2^-39).
    codes = []
    for i in range(40):
        status, answer = stack.post("/v1/batch", {"batch": [entered(i, f"aud_{i}")]})
        assert status == 200, answer
        codes.append(answer["results"][0]["code"] if answer.get("results") else "accepted")
    assert codes.count("accepted") == CAP
    assert set(codes) == {"accepted", "new_audience_limit"}
    assert stack.redis.scard(keys.TARGETS) == CAP
    # Audiences already admitted are not new, whichever process the next request reaches.
    for i in range(8):
        status, answer = stack.post("/v1/batch", {"batch": [entered(100 + i, f"aud_{codes.index('accepted')}")]})
        assert (status, answer["accepted"]) == (200, 1)
