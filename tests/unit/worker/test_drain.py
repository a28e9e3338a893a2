"""Draining a target: order, collapse, full batches, and what each TikTok answer does to a batch."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.unit.worker.conftest import ADVERTISER
from worker import keys
from worker.drain import Drainer, drain_targets
from worker.keys import Target
from worker.operations import EMAIL_SHA256, Operation
from worker.queue import enqueue
from worker.tiktok.errors import AuthError, PermanentError, ThrottledError, TransientError

TARGET = Target("dest", ADVERTISER, "1234")


def email(i: int) -> str:
    return f"{i:064x}"


def accept(ctx: Any, *ops: tuple[str, int], target: Target = TARGET) -> None:
    operations = [Operation(target, action, email=email(i)) for action, i in ops]  # type: ignore[arg-type]
    enqueue(ctx.redis, operations, flush_interval=0.0, batch_size=ctx.settings.batch_size, now=time.time() - 1)
    time.sleep(0.002)  # let the flush interval pass


def drain(ctx: Any, target: Target = TARGET) -> str:
    return asyncio.run(Drainer(ctx, target.name).run())


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
    assert ctx.redis.zscore(keys.READY, TARGET.name) is None


def test_a_partial_batch_waits_for_the_flush_interval_while_the_intake_is_busy(ctx: Any, client: Any) -> None:
    ctx.settings.flush_interval = 60
    # quiet=60: the write marks the intake busy for a minute, as a stream of writes keeps it marked.
    enqueue(ctx.redis, [Operation(TARGET, "add", email=email(1))], flush_interval=60, batch_size=100, quiet=60)
    assert drain(ctx) == "waiting"
    assert client.calls == []
    assert ctx.redis.zscore(keys.READY, TARGET.name) > time.time() + 50


def test_a_partial_batch_goes_at_once_when_the_intake_has_gone_quiet(ctx: Any, client: Any) -> None:
    ctx.settings.flush_interval = 60
    enqueue(ctx.redis, [Operation(TARGET, "add", email=email(1))], flush_interval=60, batch_size=100,
            quiet=0.05)
    time.sleep(0.1)  # the busy marker expires: nothing more is coming to fill the batch
    assert ctx.redis.exists(keys.INTAKE_RECENT) == 0
    assert drain(ctx) == "drained"
    assert [len(c.rows) for c in client.calls] == [1]


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
    assert ctx.redis.zscore(keys.READY, TARGET.name) is not None
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


def test_a_second_drainer_leaves_a_locked_target_alone(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1))
    holder = Drainer(ctx, TARGET.name)
    assert holder.lock.acquire()
    assert drain(ctx) == "busy"
    assert client.calls == []


def test_native_audience_is_created_once_and_remembered(ctx: Any, client: Any) -> None:
    target = Target("dest", ADVERTISER, "@vip_users")
    accept(ctx, ("add", 1), target=target)
    drain(ctx, target)
    accept(ctx, ("add", 2), target=target)
    drain(ctx, target)
    assert client.created == ["vip_users"]
    assert {c.audience_id for c in client.calls} == {"900000000000000001"}


def test_one_task_drains_several_targets_each_in_order(ctx: Any, client: Any) -> None:
    targets = [Target("dest", ADVERTISER, str(1000 + n)) for n in range(5)]
    for n, target in enumerate(targets):
        accept(ctx, ("add", 10 * n), ("delete", 10 * n + 1), target=target)
    outcomes = asyncio.run(drain_targets(ctx, [t.name for t in targets] + ["dest|nope|@bad"]))
    assert outcomes[:5] == ["drained"] * 5
    for n, target in enumerate(targets):
        calls = [(c.action, c.rows) for c in client.calls if c.audience_id == target.audience]
        assert calls == [("add", [{EMAIL_SHA256: email(10 * n)}]), ("delete", [{EMAIL_SHA256: email(10 * n + 1)}])]
        assert ctx.redis.xlen(keys.stream(target.name)) == 0
        assert ctx.redis.exists(keys.lock(target.name)) == 0
    assert int(ctx.redis.get(keys.BACKLOG)) == 0
