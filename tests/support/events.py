"""Events the integration tests send, the membership they describe, and the waiting and reading helpers
around them (as an operator reads the service: its CLI, or Redis when polling must be cheap)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from producer.identifiers import hash_email
from tests.support.stack import ADVERTISER, Stack
from worker.ledger import Ledger


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1,
               message: str = "condition") -> Any:
    """The first true value of ``predicate``; an exception counts as "not yet" and is shown if time runs out."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the service may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}" +
                         (f" (last error: {last_error})" if last_error else ""))


def engage(event: str, i: int, audience_id: str | None, *, key: str = "engaged", email: bool = True,
           phone: str | None = None) -> dict[str, Any]:
    """An Engage audience event for user ``i`` (email ``user{i}@example.com`` unless ``email`` is False)."""
    traits: dict[str, Any] = {}
    if email:
        traits["email"] = f"user{i}@example.com"
    if phone:
        traits["phone"] = phone
    personas: dict[str, Any] = {"computation_key": key}
    if audience_id:
        personas["external_audience_id"] = audience_id
    return {"type": "track", "event": event, "userId": f"u{i}", "messageId": f"{event}-{key}-{i}",
            "properties": {key: event == "Audience Entered"}, "context": {"traits": traits, "personas": personas}}


def email_member(i: int) -> str:
    """User ``i``'s email as the sandbox lists an audience member."""
    return f"EMAIL_SHA256:{hash_email(f'user{i}@example.com')}"


def post_all(stack: Stack, events: list[dict[str, Any]], per_request: int = 100) -> None:
    """Every event posted and accepted, ``per_request`` to a request."""
    for start in range(0, len(events), per_request):
        status, body = stack.post("/v1/batch", {"batch": events[start : start + per_request]})
        assert status == 200 and body["rejected"] == 0, body


def settle(stack: Stack, timeout: float = 60) -> None:
    wait_until(stack.backlog_settled, timeout, interval=0.2, message="every operation settled")


def ledger(stack: Stack, *options: str) -> list[dict[str, Any]]:
    """``tiktok-audiences batches list --json``, as an operator reads it."""
    code, out, err = stack.cli("batches", "list", "--json", "--limit", "10000", *options)
    assert code == 0, err
    records: list[dict[str, Any]] = orjson.loads(out)
    return records


def statuses(stack: Stack) -> dict[str, str]:
    """Batch id -> status, read straight from Redis: cheap enough to poll while a scenario runs."""
    ledger = Ledger(stack.redis, delivered_retention=3600, dead_retention=3600)
    return {record.id: record.status for record in ledger.list(limit=10_000)}


def stats(stack: Stack) -> dict[str, Any]:
    """``tiktok-audiences stats --json``."""
    code, out, err = stack.cli("stats", "--json")
    assert code == 0, err
    doc: dict[str, Any] = orjson.loads(out)
    return doc


class Events:
    """Engage events for a few seeded audiences, and the membership they describe."""

    def __init__(self, stack: Stack, audiences: int) -> None:
        self.stack = stack
        self.audiences = [f"31000000000000000{n:02d}" for n in range(audiences)]
        for audience in self.audiences:
            stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name=f"aud-{audience}",
                                        audience_id=audience)
        self.expected: dict[str, set[str]] = defaultdict(set)
        self.operations = Counter[str]()  # per audience, as accepted (before any collapse in a batch)

    def enter(self, audience: str, users: Iterable[int]) -> list[dict[str, Any]]:
        events = [engage("Audience Entered", i, audience, key=f"k{audience}") for i in users]
        self.expected[audience] |= {email_member(i) for i in users}
        self.operations[audience] += len(events)
        return events

    def exit(self, audience: str, users: Iterable[int]) -> list[dict[str, Any]]:
        events = [engage("Audience Exited", i, audience, key=f"k{audience}") for i in users]
        self.expected[audience] -= {email_member(i) for i in users}
        self.operations[audience] += len(events)
        return events

    def wave(self, n: int) -> list[dict[str, Any]]:
        """Ten new users enter every audience; half of the previous wave's leave; two who left come back."""
        first = n * 10
        events = self.everyone_enters(range(first, first + 10))
        for audience in self.audiences:
            events += self.exit(audience, range(max(0, first - 10), max(0, first - 5)))
            events += self.enter(audience, range(max(0, first - 20), max(0, first - 18)))
        return events

    def everyone_enters(self, users: Iterable[int]) -> list[dict[str, Any]]:
        users = list(users)
        return [event for audience in self.audiences for event in self.enter(audience, users)]

    def post(self, events: list[dict[str, Any]], per_request: int = 50) -> None:
        """Post like a well-behaved sender: an answer other than 200 (intake busy, Redis away) is retried."""
        for start in range(0, len(events), per_request):
            chunk = events[start : start + per_request]

            def accepted(chunk: list[dict[str, Any]] = chunk) -> bool:
                status, body = self.stack.post("/v1/batch", {"batch": chunk})
                assert status in (200, 503), (status, body)
                if status == 200:
                    assert body["rejected"] == 0, body
                return status == 200

            wait_until(accepted, 30, interval=0.2, message="intake to accept events")

    def assert_delivered_exactly(self) -> None:
        for audience in self.audiences:
            assert set(self.stack.sandbox.members(audience)) == self.expected[audience], audience
