"""Intake: validated, routed events become queue entries in one round trip; rejections are counted and
answered; back-pressure and Redis failures accept nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import fakeredis
import orjson
import pytest

from producer.intake import AsyncIntake, BacklogFull, StoreUnavailable, SyncIntake
from producer.intake_writes import REJECTED_LOG_CAP
from tests.support.intake import (
    NO_IDENTIFIER,
    TARGET,
    AsyncPipelineDownRedis,
    PipelineDownRedis,
    create_audience,
    entered,
    exploding_router,
    router,
    settings,
    sha,
)
from worker import keys
from worker.operations import decode_entry
from worker.queue import ENTRY_FIELD


class CountingRedis(fakeredis.FakeRedis):
    """Counts round trips: standalone commands and pipeline executions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []
        self.pipelines = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        self.pipelines += 1
        return super().pipeline(transaction, shard_hint)


def make_intake(client: fakeredis.FakeRedis, **overrides: Any) -> SyncIntake:
    return SyncIntake(router(), client, settings(**overrides), clock=lambda: 1_000.0)


def make_async_intake(client: fakeredis.aioredis.FakeRedis, **overrides: Any) -> AsyncIntake:
    return AsyncIntake(router(), client, settings(**overrides), clock=lambda: 1_000.0)


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=server)


def stream_entries(client: fakeredis.FakeRedis) -> list[list[Any]]:
    entries = client.xrange(keys.stream(TARGET.name))
    return [decode_entry(fields[ENTRY_FIELD.encode()]) for _, fields in entries]


def test_accepted_events_land_in_their_targets_stream_as_one_entry(client: fakeredis.FakeRedis) -> None:
    intake = make_intake(client)
    result = intake.accept([entered("a@example.com", "m1"), entered("b@example.com", "m2")])

    assert (result.accepted, result.rejected, result.operations) == (2, 0, 2)
    [entry] = stream_entries(client)
    assert [op.email for op in entry] == [sha("a@example.com"), sha("b@example.com")]
    assert {op.action for op in entry} == {"add"}
    assert {op.phone for op in entry} == {""}
    # Due one flush interval after acceptance, in the ready index; counters follow.
    assert client.zscore(keys.lane_due(TARGET.lane), TARGET.name) == client.zscore(keys.READY, TARGET.lane) == 1_002.0
    assert client.sismember(keys.TARGETS, TARGET.name)
    assert int(client.get(keys.BACKLOG)) == 2
    assert int(client.get(keys.pending_count(TARGET.name))) == 2


def test_exits_become_deletes_and_emails_are_normalised_before_hashing(client: fakeredis.FakeRedis) -> None:
    make_intake(client).accept([entered("Test.User+tag@Testing.com", exited=True)])

    [[op]] = stream_entries(client)
    assert op.action == "delete"
    assert op.email == "2458778dc6906a947a016ee3bef93b57099bb130945b8f717f7d8794beb69bca"


def test_raw_identifiers_never_reach_redis(client: fakeredis.FakeRedis) -> None:
    make_intake(client).accept([
        entered("secret.person@example.com", phone="+1 415 555 0100"),
        entered(None, "m2", phone="secret-not-a-phone"),
        {"type": "nope", "userId": "u", "context": {"traits": {"email": "secret.person@example.com"}}},
    ])

    dump = b"".join(str(client.dump(k)).encode() for k in client.keys("*"))
    assert client.llen(keys.REJECTED_LOG) == 2
    assert b"secret" not in dump and b"555" not in dump


def test_a_request_is_one_round_trip(server: fakeredis.FakeServer) -> None:
    client = CountingRedis(server=server)
    intake = make_intake(client)
    intake.accept([entered("a@example.com")])  # first request also reads the backlog
    client.commands.clear()
    client.pipelines = 0

    result = intake.accept([entered("b@example.com"), entered(None, "m2"), create_audience("VIP")])

    assert (result.accepted, result.rejected, result.creates) == (2, 1, 1)
    assert client.pipelines == 1
    assert client.commands == []  # the backlog cache was refreshed by the write itself


def test_rejected_events_are_counted_by_reason_and_nothing_is_enqueued(client: fakeredis.FakeRedis) -> None:
    result = make_intake(client).accept([entered(None, "m-no-id"), "not an event"])

    assert (result.accepted, result.rejected, result.operations) == (0, 2, 0)
    assert result.results == [
        {"index": 0, "messageId": "m-no-id", "status": "rejected", "code": "no_identifier",
         "reason": f"mapping 1 (addToAudience): {NO_IDENTIFIER}",
         "mappings": [{"destination": "tiktok-main", "mapping": 1, "action": "addToAudience",
                       "status": "rejected", "code": "no_identifier",
                       "reason": f"mapping 1 (addToAudience): {NO_IDENTIFIER}"}]},
        {"index": 1, "messageId": None, "status": "rejected", "code": "invalid_event",
         "reason": "an event must be a JSON object, not a string"},
    ]
    assert client.hgetall(keys.REJECTED) == {b"no_identifier": b"1", b"invalid_event": b"1"}
    newest, oldest = (orjson.loads(x) for x in client.lrange(keys.REJECTED_LOG, 0, -1))
    assert oldest == {"time": 1_000.0, "messageId": "m-no-id",
                      "reason": f"mapping 1 (addToAudience): {NO_IDENTIFIER}",
                      "rejection_code": "no_identifier", "destination": "tiktok-main", "mapping": 1}
    assert newest["rejection_code"] == "invalid_event" and "destination" not in newest
    assert client.xlen(keys.stream(TARGET.name)) == 0
    assert client.get(keys.BACKLOG) is None
    assert client.zcard(keys.READY) == 0


def test_mixed_request_answers_rejected_events_by_index(client: fakeredis.FakeRedis) -> None:
    events = [entered("a@example.com", "m0"), entered(None, "m1"), entered("c@example.com", "m2")]
    result = make_intake(client).accept(events)

    assert (result.accepted, result.rejected) == (2, 1)
    assert [(r["index"], r["messageId"], r["status"]) for r in result.results] == [(1, "m1", "rejected")]
    assert result.rejected_by_code == {"no_identifier": 1}
    assert len(stream_entries(client)[0]) == 2


def test_rejection_log_is_capped(client: fakeredis.FakeRedis) -> None:
    intake = make_intake(client)
    intake.accept([entered(None, f"m{i}") for i in range(REJECTED_LOG_CAP + 10)])
    intake.accept([entered(None, "last")])

    assert client.llen(keys.REJECTED_LOG) == REJECTED_LOG_CAP
    assert orjson.loads(client.lindex(keys.REJECTED_LOG, 0))["messageId"] == "last"
    assert client.hget(keys.REJECTED, "no_identifier") == str(REJECTED_LOG_CAP + 11).encode()


def test_audience_creates_go_to_the_creates_stream_once_per_request(client: fakeredis.FakeRedis) -> None:
    result = make_intake(client).accept([create_audience("VIP buyers"), create_audience("VIP buyers", "c2")])

    assert (result.accepted, result.creates) == (2, 1)
    [(_, fields)] = client.xrange(keys.CREATES)
    assert orjson.loads(fields[b"c"]) == {
        "destination": "tiktok-main", "advertiser_id": "7000000000000000001", "name": "VIP buyers"
    }


def test_unmatched_and_dropped_identifiers_are_reported(client: fakeredis.FakeRedis) -> None:
    events = [{"type": "track", "event": "Page Viewed", "userId": "u1"}, entered(phone="not a phone")]
    result = make_intake(client).accept(events)

    assert (result.accepted, result.unmatched) == (2, 1)
    assert result.dropped_identifiers == {"invalid_phone": 1}


def test_a_routing_bug_rejects_that_event_only(client: fakeredis.FakeRedis) -> None:
    intake = SyncIntake(exploding_router(), client, settings())
    result = intake.accept([{"type": "track", "event": "Explode", "userId": "u1"}, entered()])

    assert (result.accepted, result.rejected) == (1, 1)
    assert result.results[0]["code"] == "internal_error"
    assert "RuntimeError" in result.results[0]["reason"]


def test_a_full_batch_makes_its_target_due_at_once(client: fakeredis.FakeRedis) -> None:
    make_intake(client, batch_size=2).accept([entered("a@example.com"), entered("b@example.com")])

    assert client.zscore(keys.lane_due(TARGET.lane), TARGET.name) == client.zscore(keys.READY, TARGET.lane) == 0


def test_every_write_marks_the_intake_busy_for_the_quiet_flush_period(client: fakeredis.FakeRedis) -> None:
    client.set(keys.QUIET_SWEPT, 1)  # the scheduler swept during the last quiet spell
    make_intake(client, quiet_flush=30).accept([entered("a@example.com")])

    assert 29_000 < client.pttl(keys.INTAKE_RECENT) <= 30_000
    assert not client.exists(keys.QUIET_SWEPT)  # a new spell may be swept once it comes


def test_without_quiet_flush_writes_leave_no_busy_marker(client: fakeredis.FakeRedis) -> None:
    make_intake(client, quiet_flush=0).accept([entered("a@example.com")])

    assert not client.exists(keys.INTAKE_RECENT)


def test_backlog_above_the_limit_refuses_the_request(client: fakeredis.FakeRedis) -> None:
    client.set(keys.BACKLOG, 101)
    intake = make_intake(client, backlog_limit=100)

    with pytest.raises(BacklogFull) as raised:
        intake.accept([entered()])
    assert raised.value.retry_after > 0
    assert client.xlen(keys.stream(TARGET.name)) == 0

    # The backlog is cached briefly, then re-read.
    client.set(keys.BACKLOG, 0)
    with pytest.raises(BacklogFull):
        intake.accept([entered()])
    time.sleep(0.12)
    assert intake.accept([entered()]).accepted == 1


def test_redis_down_accepts_nothing(server: fakeredis.FakeServer) -> None:
    intake = make_intake(PipelineDownRedis(server=server))

    with pytest.raises(StoreUnavailable):
        intake.accept([entered()])
    assert fakeredis.FakeRedis(server=server).xlen(keys.stream(TARGET.name)) == 0


def test_redis_unreachable_before_the_write_accepts_nothing() -> None:
    server = fakeredis.FakeServer()
    server.connected = False
    intake = make_intake(fakeredis.FakeRedis(server=server))

    with pytest.raises(StoreUnavailable):
        intake.accept([entered()])


def test_async_twin_writes_the_same(server: fakeredis.FakeServer, client: fakeredis.FakeRedis) -> None:
    intake = make_async_intake(fakeredis.aioredis.FakeRedis(server=server))

    result = asyncio.run(intake.accept_async([entered("a@example.com"), entered(None, "m2")]))

    assert (result.accepted, result.rejected, result.operations) == (1, 1, 1)
    assert [op.email for op in stream_entries(client)[0]] == [sha("a@example.com")]
    assert client.hget(keys.REJECTED, "no_identifier") == b"1"


def test_async_redis_down_accepts_nothing(server: fakeredis.FakeServer) -> None:
    intake = make_async_intake(AsyncPipelineDownRedis(server=server))

    with pytest.raises(StoreUnavailable):
        asyncio.run(intake.accept_async([entered()]))


# -- event time ------------------------------------------------------------------------------------------------


def test_operations_carry_the_event_time_and_message_id(client: fakeredis.FakeRedis) -> None:
    timed = {**entered("a@example.com", "m-a"), "timestamp": "1970-01-01T00:15:00Z"}
    untimed = entered("b@example.com", "m-b")
    make_intake(client).accept([timed, untimed])

    [(_, fields)] = client.xrange(keys.stream(TARGET.name))
    packed = orjson.loads(fields[ENTRY_FIELD.encode()])
    assert [p[5:] for p in packed] == [[900_000, "m-a"], [0, ""]]  # else unknown: acceptance time, then arrival


def test_times_too_far_ahead_are_clamped_and_counted(client: fakeredis.FakeRedis) -> None:
    ahead = {**entered("a@example.com"), "timestamp": "1970-01-01T00:16:41Z"}  # 1,001 s: 1 s past the skew
    result = make_intake(client, max_event_skew=0.5).accept([ahead])

    assert result.clamped == 1
    [(_, fields)] = client.xrange(keys.stream(TARGET.name))
    assert orjson.loads(fields[ENTRY_FIELD.encode()])[0][5] == 1_000_000
    assert client.hget(keys.METRICS, "clamped") == b"1"


def test_clamped_and_unmatched_counts_ride_on_the_grouped_write(server: fakeredis.FakeServer) -> None:
    aclient = fakeredis.aioredis.FakeRedis(server=server)
    ahead = {**entered("a@example.com"), "timestamp": "1970-01-03T00:00:00Z"}
    other = {"type": "track", "event": "Order Completed", "userId": "u2"}
    result = asyncio.run(make_async_intake(aclient).accept_async([ahead, other, entered("b@example.com")]))

    assert (result.accepted, result.clamped, result.unmatched, result.operations) == (3, 1, 1, 2)
    store = fakeredis.FakeRedis(server=server)
    assert store.hgetall(keys.METRICS) == {b"clamped": b"1", b"unmatched": b"1"}


def test_an_unreadable_timestamp_rejects_that_event_naming_the_field(client: fakeredis.FakeRedis) -> None:
    bad = {**entered("a@example.com", "m-bad"), "originalTimestamp": "tomorrow-ish"}
    result = make_intake(client).accept([bad, entered("b@example.com")])

    assert (result.accepted, result.rejected) == (1, 1)
    assert result.results[0]["code"] == "invalid_timestamp" and "'originalTimestamp'" in result.results[0]["reason"]
    assert client.hget(keys.REJECTED, "invalid_timestamp") == b"1"


# -- mappings judged one by one ----------------------------------------------------------------------------------


def test_an_event_one_mapping_refuses_is_kept_for_the_others_and_the_refusal_counted(
        client: fakeredis.FakeRedis) -> None:
    # "Create Audience" without a name: createAudience refuses it; an addToAudience subscribed to every
    # track event still adds the user.
    from core.destinations import parse_destinations
    from producer.routing import Router
    data = {"destinations": [{
        "id": "tiktok-main", "access_token_env": "TIKTOK_ACCESS_TOKEN", "advertiser_ids": [TARGET.advertiser_id],
        "mappings": [
            {"action": "addToAudience", "subscribe": 'type = "track"'},
            {"action": "createAudience", "fields": {"selected_advertiser_id": TARGET.advertiser_id,
                                                    "custom_audience_name": {"@path": "$.properties.nope"}}},
        ]}]}
    both = Router.from_destinations(parse_destinations(data))
    event = {**entered("a@example.com", "m-c"), "event": "Create Audience"}
    result = SyncIntake(both, client, settings(), clock=lambda: 1_000.0).accept([event])

    assert (result.accepted, result.rejected, result.operations) == (1, 0, 1)
    [entry] = result.results
    assert (entry["status"], entry["code"]) == ("partial", "missing_field")
    assert [m["status"] for m in entry["mappings"]] == ["accepted", "rejected"]
    assert client.hget(keys.REJECTED, "missing_field") == b"1"
