"""Intake on several processes (``serve --workers N``): one service to its senders and to its operators."""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.support.stack import Stack

pytestmark = pytest.mark.integration


def engage(i: int) -> dict[str, object]:
    return {"type": "track", "event": "Audience Entered", "userId": f"u{i}", "messageId": f"m{i}",
            "properties": {"shoppers": True},
            "context": {"traits": {"email": f"user{i}@example.com"}, "personas": {"computation_key": "shoppers"}}}


def scraped_total(stack: Stack, name: str) -> float:
    with urllib.request.urlopen(stack.intake_url + "/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{name} is missing from /metrics:\n{text[:2000]}"
    return float(found.group(1))


def test_every_intake_process_reports_the_events_all_of_them_accepted(stack: Stack) -> None:
    stack.start_intake(processes=2)
    # Each request opens a connection of its own, which the kernel hands to either process: with 40 of them
    # both processes take some (one process taking all has odds of 2^-39).
    for i in range(40):
        status, answer = stack.post("/v1/batch", {"batch": [engage(3 * i + k) for k in range(3)]})
        assert (status, answer["accepted"]) == (200, 3)
    # Scrapes, too, reach either process: every one must see the whole fleet's count.
    assert {scraped_total(stack, "tta_intake_events_accepted_total") for _ in range(8)} == {120.0}
