"""The whole path, as a user runs it: events posted to intake end as TikTok (sandbox) audience membership."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from producer.identifiers import phone_hasher
from tests.support.events import email_member, engage, post_all, wait_until
from tests.support.stack import ADVERTISER, LEGACY_AUDIENCE, Stack

pytestmark = pytest.mark.integration

NO_IDENTIFIER = "At least one enabled identifier (Email, Phone, or Advertising ID) must have a value."


def settle(stack: Stack, timeout: float = 60) -> None:
    wait_until(stack.backlog_settled, timeout, message=f"every operation settled\n{stack.logs()}")


@pytest.fixture
def running(stack: Stack) -> Stack:
    for audience_id in ("3000000000000000001", "3000000000000000002"):
        stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name=f"aud-{audience_id}", audience_id=audience_id)
    stack.start_intake()
    stack.start_worker()
    return stack


def test_native_add_and_remove_on_two_audiences(running: Stack) -> None:
    a, b = "3000000000000000001", "3000000000000000002"
    events = [engage("Audience Entered", i, a) for i in range(5)]
    events += [engage("Audience Entered", i, b, key="other") for i in range(3, 8)]
    events += [engage("Audience Exited", 0, a), engage("Audience Exited", 7, b, key="other")]
    post_all(running, events)
    settle(running)
    assert set(running.sandbox.members(a)) == {email_member(i) for i in (1, 2, 3, 4)}
    assert set(running.sandbox.members(b)) == {email_member(i) for i in (3, 4, 5, 6)}


def test_legacy_add_and_remove_with_an_explicit_audience_id(running: Stack) -> None:
    def legacy(event: str, i: int) -> dict[str, Any]:
        return {"type": "track", "event": event, "userId": f"u{i}",
                "properties": {"email": f"user{i}@example.com"}}

    post_all(running, [legacy("Legacy Added", i) for i in range(4)])
    settle(running)
    post_all(running, [legacy("Legacy Removed", 2)])
    settle(running)
    assert set(running.sandbox.members(LEGACY_AUDIENCE)) == {email_member(i) for i in (0, 1, 3)}


def test_a_25000_user_audience_goes_as_three_requests_of_at_most_10000_rows(running: Stack) -> None:
    audience = "3000000000000000001"
    post_all(running, [engage("Audience Entered", i, audience) for i in range(25_000)], per_request=500)
    settle(running, timeout=120)
    calls = [c for c in running.sandbox.calls() if c["audience_id"] == audience and c["code"] == 0]
    assert sorted(c["rows"] for c in calls) == [5_000, 10_000, 10_000]
    assert len(running.sandbox.members(audience)) == 25_000


def test_add_then_remove_of_the_same_user_ends_removed(running: Stack) -> None:
    audience = "3000000000000000001"
    post_all(running, [engage("Audience Entered", 1, audience), engage("Audience Entered", 2, audience),
                       engage("Audience Exited", 1, audience)])
    settle(running)
    assert set(running.sandbox.members(audience)) == {email_member(2)}


def test_a_phone_only_user_is_added(running: Stack) -> None:
    audience = "3000000000000000001"
    post_all(running, [engage("Audience Entered", 1, audience, email=False, phone="(415) 555-0100")])
    settle(running)
    expected = phone_hasher("e164", "US")("+14155550100")
    assert running.sandbox.members(audience) == [f"PHONE_SHA256:{expected}"]


def test_a_pre_hashed_email_is_passed_through_unchanged(running: Stack) -> None:
    audience = "3000000000000000001"
    digest = hashlib.sha256(b"someone@example.com").hexdigest().upper()
    event = engage("Audience Entered", 1, audience, email=False)
    event["context"]["traits"]["email"] = digest
    post_all(running, [event])
    settle(running)
    assert running.sandbox.members(audience) == [f"EMAIL_SHA256:{digest.lower()}"]


def test_an_event_without_a_usable_identifier_is_rejected_and_nothing_enqueued(running: Stack) -> None:
    event = engage("Audience Entered", 1, "3000000000000000001", email=False)
    status, body = running.post("/v1/track", event)
    assert status == 400
    assert body["code"] == "no_identifier" and NO_IDENTIFIER in body["message"]
    assert running.redis.smembers("tta:targets") == set()
    assert int(running.redis.hget("tta:rejected", "no_identifier")) == 1


def test_a_partial_batch_goes_once_the_intake_is_quiet_not_after_the_flush_interval(stack: Stack) -> None:
    audience = "3000000000000000001"
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="quiet", audience_id=audience)
    stack.env.update({"TTA_FLUSH_INTERVAL": "120", "TTA_QUIET_FLUSH": "0.3"})
    stack.start_intake()
    stack.start_worker()
    post_all(stack, [engage("Audience Entered", i, audience) for i in range(3)])
    # Nothing more comes to fill the batch: it goes once the intake has been quiet 0.3 s, well before the
    # two-minute flush interval would send it.
    settle(stack, timeout=30)
    assert set(stack.sandbox.members(audience)) == {email_member(i) for i in range(3)}


def test_the_worker_runs_below_intake_priority(stack: Stack) -> None:
    stack.start_intake()
    worker = stack.start_worker()

    def niceness(pid: int) -> int:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
        return int(fields[16])  # field 19 of proc(5), counted after the command name

    intake = stack.processes[0]
    assert intake.process is not None and worker.process is not None
    # The worker, its scheduler and its pool (once started) all inherit TTA_WORKER_NICE (default 10).
    pids = wait_until(lambda: [worker.process.pid, *worker.children()] if len(worker.children()) >= 2 else None,
                      30, message="the worker's scheduler and pool")
    base = niceness(intake.process.pid)
    assert {niceness(pid) - base for pid in pids} == {min(10, 19 - base)}
