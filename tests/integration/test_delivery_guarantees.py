"""Delivery guarantees, shown end to end: whatever TikTok (the sandbox) or the machines
do, the audiences in TikTok end up exactly as the events say, and operators can see and fix what failed.

Every scenario runs real processes (redis-server, intake, Celery workers with their scheduler, the sandbox)
and ends by comparing the sandbox's membership with the membership the events describe.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.support.events import Events, email_member, engage, ledger, settle, stats, statuses, wait_until
from tests.support.stack import ADVERTISER, TOKEN, Stack
from worker.ledger import Ledger

pytestmark = pytest.mark.integration

DESTINATION = "tiktok-main"
TRANSIENT_MODES = ["http500", "http503", "code50002", "drop", "slow"]


@pytest.fixture(autouse=True)
def report(stack: Stack, request: pytest.FixtureRequest) -> Iterator[None]:
    """After each scenario, what the sandbox saw and the ledger recorded (shown by ``pytest -rP``)."""
    started = time.monotonic()
    yield
    try:
        calls = mapping_calls(stack)
        records = Ledger(stack.redis, delivered_retention=3600, dead_retention=3600).list(limit=10_000)
    except Exception as exc:  # the scenario's own failure is what matters
        print(f"no report: {exc}")
        return
    outcomes = Counter(c["fault"] or ("ok" if c["code"] == 0 else str(c["code"])) for c in calls)
    print(f"\n[{request.node.name}] {time.monotonic() - started:.1f} s; {len(calls)} calls "
          f"{dict(sorted(outcomes.items()))}; {len(records)} batches, "
          f"{sum(r.attempts for r in records) - len(records)} retries, "
          f"{sum(r.status == 'dead' for r in records)} dead")


def mapping_calls(stack: Stack) -> list[dict[str, Any]]:
    return stack.sandbox.calls()


def api_calls(stack: Stack) -> int:
    """Every call the sandbox answered on TikTok's API: mappings, audience checks and creations alike."""
    counters = stack.sandbox.counters()
    return sum(int(counters.get(name, 0)) for name in
               ("mapping_calls", "create_calls", "get_calls", "list_calls", "user_info_calls"))


def assert_ledger_matches_sandbox(stack: Stack, events: Events, *, no_collapse: bool = False,
                                  ) -> list[dict[str, Any]]:
    """Every batch delivered exactly once as far as the ledger goes: one record per batch id, its rows adding
    up to no more than the operations accepted (exactly those when no batch collapsed two operations on one
    user), and its request id one the sandbox answered with code 0."""
    records = ledger(stack)
    assert [r["status"] for r in records if r["status"] != "delivered"] == []
    assert len({r["id"] for r in records}) == len(records)
    rows = Counter[str]()
    for record in records:
        for audience, count in (record["audiences"] or {record["audience_id"]: record["rows"]}).items():
            rows[audience] += count
    for audience in events.audiences:
        assert rows[audience] <= events.operations[audience], audience
        assert rows[audience] == events.operations[audience] or not no_collapse, audience
    ok_requests = {c["request_id"] for c in mapping_calls(stack) if c["code"] == 0}
    assert {r["last_request_id"] for r in records} <= ok_requests
    assert len({r["last_request_id"] for r in records}) == len(records)
    return records


# -- rate limits --------------------------------------------------------------------------------------------


def test_throttled_start_and_a_5_qps_limit_deliver_everything_without_exceeding_it(stack: Stack) -> None:
    # The fleet-wide limiter spaces calls 1/qps apart when it grants them; the sandbox counts them when they
    # arrive, a few milliseconds later and not always by the same amount. At exactly 5 QPS one late call can
    # share a wall-clock second with five punctual ones, so the fleet runs at 4 QPS under TikTok's 5.
    events = Events(stack, audiences=6)
    stack.sandbox.knobs(throttle_first=20, qps_limit=5)
    stack.start_intake()
    for _ in range(2):
        stack.start_worker(TTA_RATE_LIMIT_QPS="4", TTA_BATCH_SIZE="10")
    events.post(events.everyone_enters(range(30)))
    settle(stack)

    events.assert_delivered_exactly()
    calls = mapping_calls(stack)
    throttled = [c for c in calls if c["code"] == 40100]
    assert len([c for c in throttled if c["fault"] == "throttle_first"]) == 20
    per_second = Counter(int(c["time"]) for c in calls)
    assert max(per_second.values()) <= 5, sorted(per_second.items())
    assert [c for c in throttled if c["fault"] == "qps_limit"] == []
    records = assert_ledger_matches_sandbox(stack, events)
    assert stats(stack)["batches"]["dead"] == 0
    assert sum(r["attempts"] for r in records) == len(calls)


# -- transient failures ----------------------------------------------------------------------------------


def test_a_fifth_of_calls_failing_transiently_still_delivers_everything(stack: Stack) -> None:
    events = Events(stack, audiences=5)
    # A "slow" answer comes after 5 s, past the client's 3 s timeout (TTA_HTTP_TIMEOUT in the harness).
    stack.sandbox.knobs(fail_rate=0.2, fail_modes=TRANSIENT_MODES, slow_seconds=5, seed=11)
    stack.start_intake()
    for _ in range(2):
        stack.start_worker(TTA_BATCH_SIZE="5")
    wave = 0
    seen: set[str] = set()
    while seen != set(TRANSIENT_MODES) and wave < 12:  # until every kind of failure has happened
        for _ in range(3):  # waves back to back: a user's add, remove and add again are in flight together
            events.post(events.wave(wave))
            wave += 1
        settle(stack)
        seen = {c["fault"] for c in mapping_calls(stack) if c["fault"]}
    assert seen == set(TRANSIENT_MODES)

    events.assert_delivered_exactly()
    assert_ledger_matches_sandbox(stack, events)
    calls = mapping_calls(stack)
    failed = [c for c in calls if c["fault"]]
    assert failed and all(c["code"] != 0 for c in failed)
    assert stats(stack)["batches"]["dead"] == 0


def test_add_then_remove_across_two_batches_ends_removed_when_the_add_is_retried(stack: Stack) -> None:
    events = Events(stack, audiences=1)
    (audience,) = events.audiences
    stack.sandbox.knobs(fail_rate=1.0, fail_modes=["http503"])
    stack.start_intake()
    stack.start_worker()
    events.post(events.enter(audience, [1, 2]))
    wait_until(lambda: any(c["http_status"] == 503 for c in mapping_calls(stack)), 30,
               message="the add to fail once")
    events.post(events.exit(audience, [1]))  # accepted while the add waits to be retried: a second batch
    stack.sandbox.knobs(fail_rate=0.0)
    settle(stack)

    events.assert_delivered_exactly()
    assert stack.sandbox.members(audience) == [email_member(2)]
    ok = [(c["action"], c["rows"]) for c in mapping_calls(stack) if c["code"] == 0]
    assert ok == [("add", 2), ("delete", 1)]
    add, delete = sorted(ledger(stack), key=lambda r: r["created_at"])
    assert (add["action"], add["status"]) == ("add", "delivered") and add["attempts"] >= 2
    assert (delete["action"], delete["status"], delete["attempts"]) == ("delete", "delivered", 1)


# -- crashes -------------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_batch_is_taken_over_and_nothing_is_delivered_twice(stack: Stack) -> None:
    events = Events(stack, audiences=4)
    stack.sandbox.knobs(latency_ms=1500)  # every call is in flight for 1.5 s
    # A dead drainer's target is free once its lock expires (TTL 5 s, more than the 3 s HTTP timeout) and is
    # dispatched again when the scheduler's lease on it ends (5 s later).
    stack.start_intake()
    doomed = stack.start_worker(TTA_BATCH_SIZE="10", TTA_LOCK_TTL="5")
    events.post(events.everyone_enters(range(30)))

    def mid_batch() -> list[str]:
        now = statuses(stack)
        delivering = [batch_id for batch_id, status in now.items() if status == "delivering"]
        return delivering if "delivered" in now.values() else []

    wait_until(mid_batch, 30, interval=0.05, message="a batch in flight after one delivered")
    doomed.stop(signal.SIGKILL)  # the worker, its scheduler and its pool children, at once
    in_flight = [batch_id for batch_id, status in statuses(stack).items() if status == "delivering"]
    killed_at = len(mapping_calls(stack))
    stack.start_worker(TTA_BATCH_SIZE="10", TTA_LOCK_TTL="5")
    settle(stack)

    events.assert_delivered_exactly()
    records = {r["id"]: r for r in assert_ledger_matches_sandbox(stack, events, no_collapse=True)}
    for batch_id in in_flight:
        assert records[batch_id]["status"] == "delivered" and records[batch_id]["attempts"] >= 2
    ok_calls = [c for c in mapping_calls(stack) if c["code"] == 0]
    # At least once: a request TikTok applied just before the kill may be sent again, nothing else is.
    assert len(records) <= len(ok_calls) <= len(records) + len(in_flight)
    print(f"killed after {killed_at} calls with {len(in_flight)} batch(es) in flight; "
          f"{len(ok_calls)} successful calls for {len(records)} batches")


def test_workers_reconnect_after_redis_restarts_and_deliver_what_arrives_next(stack: Stack) -> None:
    events = Events(stack, audiences=3)
    stack.start_intake()
    stack.start_worker()  # one worker: a consumer that stalled could not hide behind another one
    events.post(events.everyone_enters(range(10)))
    settle(stack)
    events.assert_delivered_exactly()

    for restart in range(2):
        stack.redis_server.restart()  # everything in Redis is gone; the worker and intake are idle
        time.sleep(1)  # and stay idle a while: nothing to do until new events come
        for round_ in range(2):  # a consumer that reconnected once must keep consuming
            first = 10 + (restart * 2 + round_) * 5
            events.post(events.everyone_enters(range(first, first + 5))
                        + events.exit(events.audiences[0], [restart * 2 + round_]))
            settle(stack)
            events.assert_delivered_exactly()


# -- permanent failures and replay ---------------------------------------------------------------------------


def test_a_rejected_audience_is_dead_with_tiktoks_message_and_replay_delivers_it(stack: Stack) -> None:
    events = Events(stack, audiences=3)
    broken = events.audiences[0]
    stack.sandbox.knobs(fail_audiences={broken: 40002})
    stack.start_intake()
    stack.start_worker(TTA_BATCH_SIZE="10")
    events.post(events.everyone_enters(range(25)))
    settle(stack)

    for audience in events.audiences[1:]:
        assert set(stack.sandbox.members(audience)) == events.expected[audience]
    assert stack.sandbox.members(broken) == []
    dead = ledger(stack, "--status", "dead")
    refused = {c["request_id"]: c for c in mapping_calls(stack) if c["code"] == 40002}
    assert len(dead) == 3 and {r["audience_id"] for r in dead} == {broken}
    for record in dead:
        call = refused[record["last_request_id"]]
        assert (record["last_code"], record["last_message"]) == (40002, call["message"])
        assert record["attempts"] == 1
    assert stats(stack)["batches"]["dead"] == 3

    code, out, _ = stack.cli("batches", "show", dead[0]["id"])
    assert code == 0 and dead[0]["id"] in out and "40002" in out and refused[dead[0]["last_request_id"]][
        "message"] in out
    code, out, _ = stack.cli("batches", "show", dead[0]["id"], "--json")
    assert code == 0 and orjson.loads(out)["status"] == "dead"
    assert stack.cli("batches", "show", "no-such-batch")[0] != 0

    # The audience is fixed, but TikTok is having a bad minute: replayed batches are throttled (HTTP 429 and
    # code 40100) and fail transiently (50002) before they go through, like any other batch.
    stack.sandbox.knobs(fail_audiences={broken: 50002}, http429_first=1, throttle_first=1)
    before_replay = stack.sandbox.state()["last_call_seq"]
    code, out, err = stack.cli("replay", "--status", "dead")
    assert code == 0, out + err
    assert "replaying 3 batch(es); 0 refused" in out
    wait_until(lambda: any(c["code"] == 50002 for c in mapping_calls(stack)), 30, message="a replay to fail")
    stack.sandbox.knobs(fail_audiences={})
    settle(stack)
    events.assert_delivered_exactly()
    records = assert_ledger_matches_sandbox(stack, events)
    assert sorted(r["replays"] for r in records if r["audience_id"] == broken) == [1, 1, 1]
    replay_calls = Counter(c["fault"] or c["code"] for c in stack.sandbox.calls(since=before_replay))
    assert replay_calls["http429"] == replay_calls["throttle_first"] == 1
    assert replay_calls["fail_audience"] >= 1 and replay_calls[0] == 3


def test_replay_drops_rows_that_newer_delivered_operations_supersede_and_says_which(stack: Stack) -> None:
    events = Events(stack, audiences=1)
    (audience,) = events.audiences
    stack.sandbox.knobs(fail_audiences={audience: 40002})
    stack.start_intake()
    stack.start_worker()
    events.post(events.enter(audience, range(5)))
    settle(stack)
    (dead,) = ledger(stack, "--status", "dead")
    stack.sandbox.knobs(fail_audiences={})
    events.post(events.exit(audience, [0, 1]))  # newer, delivered: users 0 and 1 end removed
    settle(stack)

    code, out, _ = stack.cli("replay", "--dry-run", dead["id"])
    assert code == 0 and f"{dead['id']}: would replay 3 rows (2 of 5 rows superseded" in out
    code, out, _ = stack.cli("replay", "--dry-run", "--json", dead["id"])
    assert (code, orjson.loads(out)) == (0, {"dry_run": True, "refused": [], "replayed": [
        {"id": dead["id"], "rows": 3, "superseded_rows": 2}]})
    code, out, _ = stack.cli("replay", dead["id"])
    assert code == 0 and f"{dead['id']}: queued for replay, 3 rows (2 of 5 rows superseded" in out
    settle(stack)
    events.assert_delivered_exactly()
    replayed = orjson.loads(stack.cli("batches", "show", dead["id"], "--json")[1])
    assert (replayed["status"], replayed["rows"], replayed["superseded_rows"]) == ("delivered", 3, 2)

    # A batch whose every row is superseded is refused, and the operator is told why.
    stack.sandbox.knobs(fail_audiences={audience: 40002})
    events.post(events.enter(audience, [7]))
    settle(stack)
    (dead,) = ledger(stack, "--status", "dead")
    stack.sandbox.knobs(fail_audiences={})
    events.post(events.exit(audience, [7]))
    settle(stack)
    code, out, _ = stack.cli("replay", "--status", "dead", "--json")
    assert code == 1
    assert orjson.loads(out) == {"dry_run": False, "replayed": [], "refused": [
        {"id": dead["id"], "status": "dead",
         "reason": "all 1 rows are superseded by newer delivered operations"}]}
    code, out, _ = stack.cli("replay", dead["id"])
    assert code == 1
    assert f"{dead['id']}: not replayed: all 1 rows are superseded by newer delivered operations" in out
    events.assert_delivered_exactly()


# -- auth failures pause the destination ------------------------------------------------------------------


def test_a_revoked_token_pauses_the_destination_until_an_operator_resumes_it(stack: Stack) -> None:
    events = Events(stack, audiences=2)
    stack.sandbox.knobs(revoked_tokens=[TOKEN])
    stack.start_intake()
    stack.start_worker()
    events.post(events.everyone_enters(range(10)))

    paused = wait_until(lambda: stats(stack)["paused_destinations"].get(DESTINATION), 30,
                        message="the destination to pause")
    assert paused["code"] == 40105
    assert paused["reason"] == "Access token is incorrect or has been revoked."
    code, out, _ = stack.cli("stats")
    assert code == 0
    assert f"PAUSED destination {DESTINATION}" in out
    assert "Access token is incorrect or has been revoked. (code 40105)" in out
    assert f"tiktok-audiences destinations resume {DESTINATION}" in out

    # No more calls with that token: work waits, whatever arrives.
    calls_at_pause = api_calls(stack)
    assert calls_at_pause <= 2  # at most one call per drain that was already under way
    events.post(events.everyone_enters(range(10, 20)))
    time.sleep(2)  # several pause re-checks (TTA_PAUSE_RECHECK=0.5)
    assert api_calls(stack) == calls_at_pause
    # The refused call was the audiences' first (a create): no batch was cut yet; any that was waits paused.
    waiting = ledger(stack, "--status", "paused")
    assert all(r["last_code"] == 40105 for r in waiting)
    assert stats(stack)["backlog"] > 0

    stack.sandbox.knobs(revoked_tokens=[])  # the token is fixed (re-authorised)
    code, out, _ = stack.cli("destinations", "resume", DESTINATION)
    assert (code, out.strip()) == (0, f"destination {DESTINATION}: resumed")
    settle(stack)
    events.assert_delivered_exactly()
    assert stats(stack)["paused_destinations"] == {}
    assert stack.cli("destinations", "resume", DESTINATION)[1].strip() == \
        f"destination {DESTINATION}: was not paused"


def test_operator_views_of_the_ledger(stack: Stack) -> None:
    events = Events(stack, audiences=2)
    stack.start_intake()
    stack.start_worker(TTA_BATCH_SIZE="10")
    events.post(events.everyone_enters(range(15)))
    status, body = stack.post("/v1/batch", {"batch": [engage("Audience Entered", 99, events.audiences[0],
                                                             email=False)]})
    assert status == 200 and body["rejected"] == 1
    settle(stack)

    records = ledger(stack)
    # A user in both audiences is one row naming both: 15 rows, at most 10 a request.
    assert len(records) >= 2 and sum(r["rows"] for r in records) >= 15
    for audience in events.audiences:
        assert sum(r["audiences"].get(audience, 0) for r in records) == 15
    for record in records:
        assert record["destination"] == DESTINATION and record["advertiser_id"] == ADVERTISER
        assert record["status"] == "delivered" and record["action"] == "add" and record["last_code"] == 0
        assert record["last_request_id"] and record["finished_at"] >= record["created_at"]
    assert events.audiences[1] in ledger(stack, "--audience", events.audiences[1], "--limit", "1")[0]["audiences"]
    code, out, _ = stack.cli("batches", "list")
    assert code == 0 and all(r["id"] in out for r in records)

    doc = stats(stack)
    assert doc["backlog"] == 0 and doc["batches"]["delivered"] == len(records) and doc["paused_destinations"] == {}
    assert doc["rejected"] == {"no_identifier": 1}
    members = {a["audience_id"]: a["delivered_members"] for a in doc["audiences"]}
    assert members == {audience: 15 for audience in events.audiences}
