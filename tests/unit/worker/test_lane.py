"""Draining a lane: order, event time, full batches, requests across audiences, and what each TikTok answer
does to a batch."""

from __future__ import annotations

import time
from typing import Any

from tests.support.worker import ADVERTISER, TARGET, accept, drain, email
from worker import keys
from worker.keys import Target
from worker.lane import LaneDrain
from worker.operations import EMAIL_SHA256, Operation
from worker.queue import enqueue
from worker.tiktok.errors import AuthError, PermanentError, ThrottledError, TransientError


def statuses(ctx: Any) -> list[str]:
    return [r.status for r in ctx.ledger.list(limit=1000)]


def test_a_due_target_is_delivered_and_its_stream_trimmed(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1), ("add", 2))
    assert drain(ctx) == "drained"
    assert [(c.action, c.audience_id, c.rows) for c in client.calls] == [
        ("add", "1234", [{EMAIL_SHA256: email(1)}, {EMAIL_SHA256: email(2)}])]
    assert ctx.redis.xlen(keys.stream(TARGET.name)) == 0
    assert int(ctx.redis.get(keys.pending_count(TARGET.name))) == 0
    assert statuses(ctx) == ["delivered"]
    assert ctx.membership.size(TARGET.name) == 2
    assert ctx.redis.zscore(keys.READY, "dest") is None
    assert ctx.redis.zcard(keys.lane_due("dest")) == 0


def test_a_partial_batch_waits_for_the_flush_interval_while_the_intake_is_busy(ctx: Any, client: Any) -> None:
    ctx.settings.flush_interval = 60
    # quiet=60: the write marks the intake busy for a minute, as a stream of writes keeps it marked.
    enqueue(ctx.redis, [Operation(TARGET, "add", email=email(1))], flush_interval=60, batch_size=100, quiet=60)
    assert drain(ctx) == "waiting"
    assert client.calls == []
    assert ctx.redis.zscore(keys.READY, "dest") > time.time() + 50


def test_a_partial_batch_goes_at_once_when_the_intake_has_gone_quiet(ctx: Any, client: Any) -> None:
    ctx.settings.flush_interval = 60
    enqueue(ctx.redis, [Operation(TARGET, "add", email=email(1))], flush_interval=60, batch_size=100,
            quiet=0.05)
    time.sleep(0.1)  # the busy marker expires: nothing more is coming to fill the batch
    assert ctx.redis.exists(keys.INTAKE_RECENT) == 0
    assert drain(ctx) == "drained"
    assert [len(c.rows) for c in client.calls] == [1]


def test_audiences_that_together_fill_a_request_go_while_the_intake_is_busy(ctx: Any, client: Any) -> None:
    ctx.settings.flush_interval = 60
    ctx.settings.batch_size = 4
    other = Target("dest", ADVERTISER, "5678")
    for target, users in ((TARGET, (1, 2)), (other, (3, 4))):  # two each: neither audience alone is full
        enqueue(ctx.redis, [Operation(target, "add", email=email(i)) for i in users], flush_interval=60,
                batch_size=4, quiet=60)
    assert drain(ctx) == "drained"
    assert [len(c.rows) for c in client.calls] == [4]
    assert ctx.redis.zcard(keys.lane_due("dest")) == 0


def test_audiences_short_of_a_request_together_wait_while_the_intake_is_busy(ctx: Any, client: Any) -> None:
    ctx.settings.flush_interval = 60
    ctx.settings.batch_size = 5
    other = Target("dest", ADVERTISER, "5678")
    for target, users in ((TARGET, (1, 2)), (other, (3, 4))):
        enqueue(ctx.redis, [Operation(target, "add", email=email(i)) for i in users], flush_interval=60,
                batch_size=5, quiet=60)
    assert drain(ctx) == "waiting"
    assert client.calls == []


def test_without_quiet_flush_a_partial_batch_always_waits_out_the_interval(ctx: Any, client: Any) -> None:
    ctx.settings.flush_interval = 60
    ctx.settings.quiet_flush = 0
    enqueue(ctx.redis, [Operation(TARGET, "add", email=email(1))], flush_interval=60, batch_size=100)
    assert drain(ctx) == "waiting"
    assert client.calls == []


def test_add_then_remove_in_one_batch_sends_only_the_remove(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1))
    accept(ctx, ("delete", 1))
    drain(ctx)
    assert [(c.action, len(c.rows)) for c in client.calls] == [("delete", 1)]
    assert ctx.membership.size(TARGET.name) == 0


def test_batches_hold_at_most_batch_size_rows_and_go_in_order(ctx: Any, client: Any) -> None:
    accept(ctx, *[("add", i) for i in range(250)])
    drain(ctx)
    assert [len(c.rows) for c in client.calls] == [100, 100, 50]
    sent = [row[EMAIL_SHA256] for c in client.calls for row in c.rows]
    assert sent == [email(i) for i in range(250)]


def test_throttled_batch_is_rescheduled_and_never_dead(ctx: Any, client: Any) -> None:
    client.script = [ThrottledError("Too many requests", code=40100)]
    accept(ctx, ("add", 1))
    assert drain(ctx) == "throttled"
    assert statuses(ctx) == ["retrying"]
    assert ctx.limiter.throttled == [ctx.settings.throttle_cooldown]
    assert ctx.redis.zscore(keys.READY, "dest") is not None
    assert drain(ctx) == "drained"
    assert statuses(ctx) == ["delivered"]
    assert len(client.calls) == 2


def test_transient_failure_backs_off_then_delivers_the_same_batch(ctx: Any, client: Any) -> None:
    client.script = [TransientError("busy", code=50002)]
    accept(ctx, ("add", 1))
    assert drain(ctx) == "transient"
    (record,) = ctx.ledger.list()
    assert record.status == "retrying" and record.last_code == 50002 and record.next_attempt_at > time.time()
    accept(ctx, ("add", 2))  # newer work must wait behind the failed batch
    assert drain(ctx) == "backoff"
    assert len(client.calls) == 1
    ctx.ledger.update(record, next_attempt_at=time.time() - 1)
    drain(ctx)
    first, second, third = client.calls
    assert second.rows == first.rows == [{EMAIL_SHA256: email(1)}]
    assert third.rows == [{EMAIL_SHA256: email(2)}]
    assert ctx.ledger.get(record.id).status == "delivered"
    assert ctx.ledger.get(record.id).attempts == 2


def test_transient_failures_past_the_retry_window_are_dead(ctx: Any, client: Any) -> None:
    ctx.settings.retry_window = 0.0
    client.script = [TransientError("down", http_status=503)]
    accept(ctx, ("add", 1))
    drain(ctx)
    (record,) = ctx.ledger.list()
    assert record.status == "dead" and record.last_code == 503


def test_permanent_error_kills_only_that_batch(ctx: Any, client: Any) -> None:
    client.script = [PermanentError("audience not found", code=40002, request_id="r-1")]
    accept(ctx, ("add", 1))
    drain(ctx)
    accept(ctx, ("add", 2))
    drain(ctx)
    records = sorted(ctx.ledger.list(), key=lambda r: r.created_at)
    assert [(r.status, r.last_code, r.last_request_id) for r in records] == [
        ("dead", 40002, "r-1"), ("delivered", 0, "req-2")]
    assert ctx.ledger.payload(records[0].id) is not None  # kept for replay


def test_auth_error_pauses_the_destination(ctx: Any, client: Any) -> None:
    client.script = [AuthError("token revoked", code=40105)]
    accept(ctx, ("add", 1))
    assert drain(ctx) == "paused"
    assert ctx.redis.exists(keys.paused("dest"))
    assert drain(ctx) == "paused"
    assert len(client.calls) == 1  # no more calls with that token
    from worker.pause import resume

    assert resume(ctx.redis, "dest")
    assert drain(ctx) == "drained"
    assert statuses(ctx) == ["delivered"]


def test_an_interrupted_plan_is_resumed_exactly_as_cut(ctx: Any, client: Any) -> None:
    accept(ctx, *[("add", i) for i in range(150)])
    client.script = [None, TransientError("dropped")]
    drain(ctx)  # first batch delivered, second failed
    accept(ctx, ("add", 999))
    ids_before = {r.id for r in ctx.ledger.list()}
    for record in ctx.ledger.list(status="retrying"):
        ctx.ledger.update(record, next_attempt_at=time.time() - 1)
    drain(ctx)
    assert [len(c.rows) for c in client.calls] == [100, 50, 50, 1]
    assert ids_before <= {r.id for r in ctx.ledger.list()}
    assert ctx.membership.size(TARGET.name) == 151


def test_a_second_drainer_leaves_a_locked_lane_alone(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1))
    holder = LaneDrain(ctx, "dest")
    assert holder.lock.acquire()
    assert drain(ctx) == "busy"
    assert client.calls == []


def test_native_audience_is_created_once_and_remembered(ctx: Any, client: Any) -> None:
    target = Target("dest", ADVERTISER, "@vip_users")
    accept(ctx, ("add", 1), target=target)
    drain(ctx)
    accept(ctx, ("add", 2), target=target)
    drain(ctx)
    assert client.created == ["vip_users"]
    assert {c.audience_id for c in client.calls} == {"900000000000000001"}


def test_due_audiences_of_a_lane_share_one_request_each_in_order(ctx: Any, client: Any) -> None:
    targets = [Target("dest", ADVERTISER, str(1000 + n)) for n in range(5)]
    for n, target in enumerate(targets):
        accept(ctx, ("add", 10 * n), ("delete", 10 * n + 1), target=target)
    assert drain(ctx) == "drained"
    assert [(c.action, len(c.rows)) for c in client.calls] == [("add", 5), ("delete", 5)]
    for n, target in enumerate(targets):
        assert [row for c in client.calls for row, auds in zip(c.rows, c.row_audiences, strict=True)
                if target.audience in auds] == [{EMAIL_SHA256: email(10 * n)}, {EMAIL_SHA256: email(10 * n + 1)}]
        assert ctx.redis.xlen(keys.stream(target.name)) == 0
    assert ctx.redis.exists(keys.lane_lock("dest")) == 0
    assert int(ctx.redis.get(keys.BACKLOG)) == 0
    (record, _) = sorted(ctx.ledger.list(), key=lambda r: r.action)
    assert record.audiences == {t.audience: 1 for t in targets}
    assert {r.id for r in ctx.ledger.list(audience_id="1003")} == {r.id for r in ctx.ledger.list()}


def test_a_user_entering_three_audiences_is_one_row_naming_all_three(ctx: Any, client: Any) -> None:
    targets = [Target("dest", ADVERTISER, str(2000 + n)) for n in range(3)]
    for target in targets:
        accept(ctx, ("add", 7), target=target)
    drain(ctx)
    (call,) = client.calls
    assert call.rows == [{EMAIL_SHA256: email(7)}]
    assert call.row_audiences == [["2000", "2001", "2002"]]
    assert all(ctx.membership.size(t.name) == 1 for t in targets)


def test_the_latest_event_wins_whatever_order_events_arrive_in(ctx: Any, client: Any) -> None:
    accept(ctx, ("delete", 1), event_ms=2_000)
    accept(ctx, ("add", 1), event_ms=1_000)  # arrives later, happened earlier
    drain(ctx)
    assert [(c.action, len(c.rows)) for c in client.calls] == [("delete", 1)]


def test_a_permanent_refusal_of_a_mixed_request_kills_only_the_refused_audience(ctx: Any, client: Any) -> None:
    targets = [Target("dest", ADVERTISER, str(3000 + n)) for n in range(4)]
    for n, target in enumerate(targets):
        accept(ctx, ("add", n), target=target)

    def refuse_3002(call: Any) -> Exception | None:
        if "3002" in call.audience_id.split(","):
            return PermanentError("audience 3002 does not exist", code=40002, request_id=f"r-{call.audience_id}")
        return None

    client.script = [refuse_3002] * 10
    drain(ctx)
    by_audience = {r.audience_id: r for r in ctx.ledger.list()}
    assert by_audience["3002"].status == "dead"
    assert (by_audience["3002"].last_code, by_audience["3002"].last_request_id) == (40002, "r-3002")
    assert {a: r.status for a, r in by_audience.items() if a != "3002"} == {"3003": "delivered",
                                                                          "2 audiences": "delivered"}
    assert [t for t in targets if ctx.membership.size(t.name)] == [targets[0], targets[1], targets[3]]
    assert ctx.redis.xlen(keys.stream(targets[2].name)) == 0  # settled: dead, kept in the ledger for replay
    assert ctx.ledger.payload(by_audience["3002"].id) is not None


def test_a_refused_unconfirmed_audience_makes_the_lane_look_audiences_up_first(ctx: Any, client: Any) -> None:
    client.script = [PermanentError("audience 1234 does not exist", code=40002, request_id="r-1")]
    accept(ctx, ("add", 1))
    drain(ctx)
    assert statuses(ctx) == ["dead"]
    assert ctx.redis.ttl(keys.lane_check_first("dest")) > 0


def test_a_refused_request_of_confirmed_audiences_leaves_the_lane_confirming_by_delivery(
        ctx: Any, client: Any) -> None:
    ctx.audience_ids[TARGET.name] = TARGET.audience  # confirmed earlier: the refusal is about the rows
    client.script = [PermanentError("batch_data[0][0].id: invalid", code=40002, request_id="r-1")]
    accept(ctx, ("add", 1))
    drain(ctx)
    assert statuses(ctx) == ["dead"]
    assert not ctx.redis.exists(keys.lane_check_first("dest"))


def test_retry_after_beyond_the_cap_rests_the_token_for_the_cap(ctx: Any, client: Any) -> None:
    client.script = [ThrottledError("Too many requests", code=40100, retry_after=1e16)]
    accept(ctx, ("add", 1))
    assert drain(ctx) == "throttled"
    assert ctx.limiter.throttled == [ctx.settings.throttle_cooldown_max]


def test_a_single_busy_audience_of_one_operation_entries_still_fills_whole_requests(ctx: Any, client: Any) -> None:
    ctx.settings.batch_size = 1000
    for i in range(300):  # 300 stream entries of one operation each: more than one read takes
        enqueue(ctx.redis, [Operation(TARGET, "add", email=email(i))], flush_interval=0.0, batch_size=1000,
                now=time.time() - 1)
    assert drain(ctx) == "drained"
    assert [len(c.rows) for c in client.calls] == [300]


def test_operations_a_newer_event_supersedes_are_counted_for_stats_and_never_sent(ctx: Any, client: Any) -> None:
    from worker.operator.stats import collect

    accept(ctx, ("add", 1), event_ms=5_000)
    accept(ctx, ("delete", 1), event_ms=1_000)  # older: changes nothing
    drain(ctx)
    assert [(c.action, len(c.rows)) for c in client.calls] == [("add", 1)]
    assert collect(ctx.redis, ctx.ledger)["superseded"] == 1


def test_a_lost_pending_count_never_goes_below_nothing(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1), ("add", 2))
    ctx.redis.delete(keys.pending_count(TARGET.name))  # lost or reset while its operations wait
    assert drain(ctx) == "drained"
    assert int(ctx.redis.get(keys.pending_count(TARGET.name))) == 0
    assert ctx.redis.xlen(keys.stream(TARGET.name)) == 0
    assert statuses(ctx) == ["delivered"]


def test_each_audience_of_one_write_counts_its_own_pending_operations(ctx: Any, client: Any) -> None:
    other = Target("dest", ADVERTISER, "5678")
    ops = [Operation(TARGET, "add", email=email(1)), Operation(other, "add", email=email(2)),
           Operation(TARGET, "add", email=email(3))]
    enqueue(ctx.redis, ops, flush_interval=60, batch_size=100)
    enqueue(ctx.redis, ops[:1], flush_interval=60, batch_size=100)
    assert int(ctx.redis.get(keys.pending_count(TARGET.name))) == 3
    assert int(ctx.redis.get(keys.pending_count(other.name))) == 1
    assert ctx.redis.smembers(keys.TARGETS) == {TARGET.name.encode(), other.name.encode()}
