"""Many audiences behind one token: requests mix audiences, the token's rate limit is
one lane's, a refusal kills only the refused audience, and replay works on batches of several audiences.

Real processes (redis-server, intake, Celery workers with their scheduler, the sandbox) with the sandbox's own
rate limit on; every scenario ends with the sandbox's membership compared with what the events describe.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from tests.support.events import Events, email_member, engage, ledger, settle, stats
from tests.support.stack import ADVERTISER, LEGACY_ADVERTISER, LEGACY_AUDIENCE, Stack

pytestmark = pytest.mark.integration


def mapping_codes(stack: Stack) -> Counter[Any]:
    return Counter(c["code"] for c in stack.sandbox.calls())


def test_1000_audiences_at_10_calls_a_second_need_few_calls_and_none_is_throttled(stack: Stack) -> None:
    audiences = [f"40000000000{n:08d}" for n in range(1000)]
    for audience in audiences:
        stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name=f"a{audience}", audience_id=audience)
    stack.sandbox.knobs(qps_limit=10)  # TikTok's Basic tier, counted over every call of the token
    stack.start_intake()
    stack.start_worker(TTA_RATE_LIMIT_QPS="10", TTA_FLUSH_INTERVAL="1")
    events = [engage("Audience Entered", 5 * n + u, audience, key=f"k{n}")
              for n, audience in enumerate(audiences) for u in range(5)]
    for start in range(0, len(events), 500):
        status, body = stack.post("/v1/batch", {"batch": events[start : start + 500]})
        assert status == 200 and body["rejected"] == 0, body
    settle(stack, timeout=120)

    for n, audience in enumerate(audiences[::97]):
        index = audiences.index(audience)
        assert set(stack.sandbox.members(audience)) == {email_member(5 * index + u) for u in range(5)}, n
    assert sum(stack.sandbox.state()["audiences"][a]["size"] for a in audiences) == 5000
    calls = stack.sandbox.calls()
    counters = stack.sandbox.counters()
    print(f"{len(calls)} mapping calls, {counters.get('get_calls', 0)} ownership calls, "
          f"rows per call {[c['rows'] for c in calls]}")
    assert len(calls) <= 15
    assert 40100 not in mapping_codes(stack)
    assert int(counters.get("throttled_calls", 0)) == 0
    assert int(counters.get("get_calls", 0)) == 0  # the accepted mapping calls confirmed every audience


FOREIGN_ADVERTISER = "7999999999999999999"  # an advertiser the token has no access to


def test_a_foreign_audience_dies_alone_then_the_lane_looks_ids_up_before_sending(stack: Stack) -> None:
    mine = [f"41000000000{n:08d}" for n in range(4)]
    foreign = [f"42000000000{n:08d}" for n in range(2)]
    for audience in mine:
        stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name=f"a{audience}", audience_id=audience)
    for audience in foreign:
        stack.sandbox.seed_audience(advertiser_id=FOREIGN_ADVERTISER, name=f"f{audience}", audience_id=audience)
    stack.start_intake()
    stack.start_worker(TTA_FLUSH_INTERVAL="1")
    first = [mine[0], foreign[0], *mine[1:3]]
    status, body = stack.post("/v1/batch", {"batch": [engage("Audience Entered", 10 * n + u, audience, key=f"k{n}")
                                                      for n, audience in enumerate(first) for u in range(3)]})
    assert status == 200 and body["rejected"] == 0, body
    settle(stack)
    assert int(stack.sandbox.counters().get("get_calls", 0)) == 0  # never looked up: sent, and confirmed
    (dead,) = ledger(stack, "--status", "dead")
    assert dead["audiences"] == {foreign[0]: 3}
    assert dead["last_code"] == 40002 and dead["last_request_id"]
    for n, audience in enumerate(first):
        expected = set() if audience == foreign[0] else {email_member(10 * n + u) for u in range(3)}
        assert set(stack.sandbox.members(audience)) == expected, audience

    seen = stack.sandbox.calls()[-1]["seq"]
    second = [mine[3], foreign[1]]
    status, body = stack.post("/v1/batch", {"batch": [engage("Audience Entered", 100 + 10 * n + u, audience,
                                                             key=f"s{n}")
                                                      for n, audience in enumerate(second) for u in range(3)]})
    assert status == 200 and body["rejected"] == 0, body
    settle(stack)
    assert int(stack.sandbox.counters().get("get_calls", 0)) > 0  # looked up first this time
    assert all(foreign[1] not in c["audience_ids"] for c in stack.sandbox.calls(since=seen))
    assert set(stack.sandbox.members(mine[3])) == {email_member(100 + u) for u in range(3)}
    (refused,) = [r for r in ledger(stack, "--status", "dead") if foreign[1] in r["audiences"]]
    assert f"does not belong to advertiser {ADVERTISER}" in refused["last_message"]


def test_a_user_in_three_audiences_is_one_row_naming_all_three(stack: Stack) -> None:
    events = Events(stack, audiences=3)
    stack.start_intake()
    stack.start_worker()
    events.post(events.everyone_enters([7]))
    settle(stack)
    events.assert_delivered_exactly()
    (call,) = stack.sandbox.calls()
    assert call["rows"] == 1 and sorted(call["audience_ids"]) == sorted(events.audiences)


def test_audiences_of_two_advertisers_of_one_token_share_a_request(stack: Stack) -> None:
    native = "3200000000000000001"
    legacy = LEGACY_AUDIENCE  # the mapping's legacy audience, under the second advertiser (seeded by the stack)
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="native", audience_id=native)
    stack.start_intake()
    stack.start_worker()
    legacy_event = {"type": "track", "event": "Legacy Added", "userId": "u1", "messageId": "legacy-1",
                    "properties": {"email": "user1@example.com"}}
    status, body = stack.post("/v1/batch", {"batch": [engage("Audience Entered", 1, native), legacy_event]})
    assert status == 200 and body["rejected"] == 0, body
    settle(stack)
    assert stack.sandbox.members(native) == stack.sandbox.members(legacy) == [email_member(1)]
    (call,) = stack.sandbox.calls()
    assert sorted(call["advertiser_ids"]) == sorted([ADVERTISER, LEGACY_ADVERTISER])


def test_a_refused_audience_in_a_mixed_request_dies_alone_and_replay_delivers_it(stack: Stack) -> None:
    events = Events(stack, audiences=5)
    refused = events.audiences[2]
    stack.sandbox.knobs(fail_audiences={refused: 40002})
    stack.start_intake()
    stack.start_worker()
    events.post(events.everyone_enters(range(20)))
    settle(stack)

    for audience in events.audiences:
        members = set(stack.sandbox.members(audience))
        assert members == (set() if audience == refused else events.expected[audience]), audience
    dead = ledger(stack, "--status", "dead")
    assert [r["audiences"] for r in dead] == [{refused: 20}]
    assert dead[0]["last_code"] == 40002 and dead[0]["last_request_id"]
    assert [r["id"] for r in ledger(stack, "--audience", refused)] == [dead[0]["id"]]
    assert all(r["status"] == "delivered" for r in ledger(stack) if refused not in r["audiences"])

    stack.sandbox.knobs(fail_audiences={})
    code, out, err = stack.cli("replay", "--status", "dead")
    assert code == 0, out + err
    settle(stack)
    events.assert_delivered_exactly()


def test_a_dead_batch_of_several_audiences_is_replayed_whole(stack: Stack) -> None:
    events = Events(stack, audiences=4)
    stack.sandbox.knobs(fail_rate=1.0, fail_modes=["http500"])
    stack.start_intake()
    stack.start_worker(TTA_RETRY_WINDOW="1")
    events.post(events.everyone_enters(range(10)))
    settle(stack)
    dead = ledger(stack, "--status", "dead")
    assert dead and all(len(r["audiences"]) == 4 for r in dead)

    stack.sandbox.knobs(fail_rate=0.0)
    code, out, err = stack.cli("replay", "--status", "dead")
    assert code == 0, out + err
    settle(stack)
    events.assert_delivered_exactly()
    assert {r["status"] for r in ledger(stack)} == {"delivered"}


def test_order_per_audience_holds_across_batches_of_many_audiences(stack: Stack) -> None:
    events = Events(stack, audiences=6)
    stack.start_intake()
    stack.start_worker(TTA_BATCH_SIZE="25", TTA_FLUSH_INTERVAL="0.2")
    for wave in range(6):
        events.post(events.wave(wave))
        time.sleep(0.3)
    settle(stack)
    events.assert_delivered_exactly()
    assert stats(stack)["backlog"] == 0


def test_new_audiences_are_created_once_each_at_the_full_rate_and_never_throttled(stack: Stack) -> None:
    stack.sandbox.knobs(qps_limit=10)
    stack.start_intake()
    stack.start_worker(TTA_RATE_LIMIT_QPS="10", TTA_FLUSH_INTERVAL="0.5")
    events = [engage("Audience Entered", 3 * n + u, None, key=f"new{n}") for n in range(30) for u in range(3)]
    status, body = stack.post("/v1/batch", {"batch": events})
    assert status == 200 and body["rejected"] == 0, body
    settle(stack, timeout=60)

    state = stack.sandbox.state()
    created = {a["name"]: audience_id for audience_id, a in state["audiences"].items() if a["name"].startswith("new")}
    assert len(created) == 30  # one each, none twice
    for n in range(30):
        assert set(stack.sandbox.members(created[f"new{n}"])) == {email_member(3 * n + u) for u in range(3)}
    counters = state["counters"]
    assert int(counters.get("create_calls", 0)) == 30
    assert int(counters.get("throttled_calls", 0)) == 0 and 40100 not in mapping_codes(stack)
