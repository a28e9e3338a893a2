"""Recovery paths of a lane's drain: replays that fail again, pauses seen mid-plan, lost locks, crashes mid-send, and
a retry policy that counts only transient failures against a batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from core.settings import Settings
from tests.support.worker import TARGET, ScriptedClient, accept, drain, email
from worker import keys, pause
from worker.lane import BUSY_RECHECK, LATE_SLOT, RESERVE_AHEAD, WAIT_IN_PLACE, LaneDrain
from worker.lane_resolve import note_foreign_refusal
from worker.policy import Stop
from worker.replay import request_replay
from worker.tiktok.client import Response
from worker.tiktok.errors import AuthError, PermanentError, ThrottledError, TransientError


@dataclass
class HookedClient(ScriptedClient):
    """A scripted client that runs ``during`` while a call is in flight (another worker acting meanwhile)."""

    during: list[Callable[[], None]] = field(default_factory=list)

    async def send_rows(self, token: str, advertiser_ids: Sequence[str], action: str,
                        rows: Sequence[Any]) -> Response:
        if self.during:
            self.during.pop(0)()
        return await super().send_rows(token, advertiser_ids, action, rows)


@pytest.fixture
def client() -> HookedClient:
    return HookedClient()


class Killed(BaseException):
    """The worker process dies in the middle of a call (nothing after it runs but ``finally`` blocks)."""


def only_record(ctx: Any) -> Any:
    (record,) = ctx.ledger.list()
    return record


def make_due(ctx: Any) -> None:
    for record in ctx.ledger.list():
        if record.next_attempt_at:
            ctx.ledger.update(record, next_attempt_at=time.time() - 1)


# -- replay --------------------------------------------------------------------------------------------------


def test_a_replay_that_is_throttled_or_fails_again_stays_queued_until_delivered(ctx: Any,
                                                                                 client: Any) -> None:
    client.script = [PermanentError("audience not found", code=40002)]
    accept(ctx, ("add", 1))
    drain(ctx)
    request_replay(ctx.redis, ctx.ledger, only_record(ctx))

    client.script = [ThrottledError("slow down", code=40100), TransientError("busy", code=50002)]
    assert drain(ctx) == "throttled"
    assert drain(ctx) == "transient"
    assert only_record(ctx).status == "retrying"
    assert ctx.redis.lrange(keys.lane_replay("dest"), 0, -1) == [only_record(ctx).id.encode()]
    make_due(ctx)
    assert drain(ctx) == "drained"

    record = only_record(ctx)
    assert (record.status, record.attempts, record.replays) == ("delivered", 4, 1)
    assert ctx.redis.exists(keys.lane_replay("dest")) == 0
    assert ctx.membership.size(TARGET.name) == 1
    assert len(client.calls) == 4


# -- pause ---------------------------------------------------------------------------------------------------


def test_a_pause_set_by_another_worker_stops_a_plan_before_its_next_call(ctx: Any, client: Any) -> None:
    accept(ctx, *[("add", i) for i in range(250)])  # one plan, three batches
    client.during = [lambda: pause.pause(ctx.redis, "dest", reason="token revoked", code=40105)]
    assert drain(ctx) == "paused"
    assert len(client.calls) == 1  # the call under way when the pause came, and no other
    assert sorted(r.status for r in ctx.ledger.list()) == ["delivered", "pending", "pending"]
    assert pause.resume(ctx.redis, "dest")
    assert drain(ctx) == "drained"
    assert ctx.membership.size(TARGET.name) == 250


# -- retry policy -------------------------------------------------------------------------------------------


def test_throttles_do_not_lengthen_the_backoff_of_a_later_transient_failure(ctx: Any, client: Any) -> None:
    client.script = [ThrottledError("slow down", code=40100)] * 6 + [TransientError("busy", code=50002)]
    accept(ctx, ("add", 1))
    outcomes = [drain(ctx) for _ in range(7)]
    assert outcomes == ["throttled"] * 6 + ["transient"]
    record = only_record(ctx)
    assert (record.attempts, record.failures) == (7, 1)
    # The first transient failure waits backoff_base (1 s) at most, however often TikTok throttled before.
    assert record.next_attempt_at - time.time() <= ctx.settings.backoff_base


def test_the_retry_window_starts_at_the_first_transient_failure_not_before_a_long_pause(
        ctx: Any, client: Any) -> None:
    ctx.settings.retry_window = 600
    client.script = [AuthError("token revoked", code=40105)]
    accept(ctx, ("add", 1))
    assert drain(ctx) == "paused"
    ctx.ledger.update(only_record(ctx), first_attempt_at=time.time() - 86_400)  # paused for a day
    pause.resume(ctx.redis, "dest")
    client.script = [TransientError("busy", http_status=503)]
    assert drain(ctx) == "transient"
    assert only_record(ctx).status == "retrying"


def test_transient_failures_for_longer_than_the_window_make_the_batch_dead(ctx: Any, client: Any) -> None:
    ctx.settings.retry_window = 600
    client.script = [TransientError("busy", http_status=503)] * 2
    accept(ctx, ("add", 1))
    assert drain(ctx) == "transient"
    ctx.ledger.update(only_record(ctx), failing_since=time.time() - 601, next_attempt_at=None)
    drain(ctx)
    record = only_record(ctx)
    assert (record.status, record.failures, record.last_code) == ("dead", 2, 503)


def test_replay_starts_a_dead_batch_with_a_fresh_retry_window(ctx: Any, client: Any) -> None:
    ctx.settings.retry_window = 0.0
    client.script = [TransientError("busy", http_status=503)]
    accept(ctx, ("add", 1))
    drain(ctx)
    assert only_record(ctx).status == "dead"
    request_replay(ctx.redis, ctx.ledger, only_record(ctx))
    record = only_record(ctx)
    assert (record.failures, record.failing_since, record.first_attempt_at) == (0, None, None)


# -- rate limit --------------------------------------------------------------------------------------------


def test_a_slot_further_away_than_a_drain_waits_in_place_ends_the_drain_due_at_the_slot(
        ctx: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    accept(ctx, ("add", 1))
    ctx.audience_ids[TARGET.name] = TARGET.audience
    monkeypatch.setattr(ctx.limiter, "reserve", lambda token_id, ahead: (False, WAIT_IN_PLACE + 5))
    started = time.time()
    assert drain(ctx) == "rate-limited"
    assert ctx.redis.zscore(keys.READY, "dest") >= started + WAIT_IN_PLACE + 5
    assert client.calls == []


def test_a_refused_slot_is_slept_off_and_asked_for_once_more_not_polled(
        ctx: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    accept(ctx, ("add", 1))
    ctx.audience_ids[TARGET.name] = TARGET.audience
    answers = iter([(False, RESERVE_AHEAD + 0.1), (True, 0.02)])
    asked: list[float] = []

    def reserve(token_id: str, ahead: float) -> tuple[bool, float]:
        asked.append(time.monotonic())
        return next(answers)

    monkeypatch.setattr(ctx.limiter, "reserve", reserve)
    assert drain(ctx) == "drained"
    assert len(asked) == 2 and asked[1] - asked[0] >= RESERVE_AHEAD / 2


def test_a_slot_reserved_a_little_ahead_is_waited_for_in_place(ctx: Any, client: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    accept(ctx, ("add", 1))
    asked: list[float] = []

    def reserve(token_id: str, ahead: float) -> tuple[bool, float]:
        asked.append(ahead)
        return True, 0.05  # granted: the caller's slot is 50 ms away

    monkeypatch.setattr(ctx.limiter, "reserve", reserve)
    ctx.audience_ids[TARGET.name] = TARGET.audience  # resolved by an earlier batch: one call, one slot
    started = time.monotonic()
    assert drain(ctx) == "drained"  # not put back in the ready index
    assert time.monotonic() - started >= 0.05
    assert asked == [RESERVE_AHEAD] and len(client.calls) == 1


def test_the_first_delivery_to_an_unconfirmed_audience_is_its_only_call(
        ctx: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    accept(ctx, ("add", 1))
    asked: list[float] = []
    monkeypatch.setattr(ctx.limiter, "reserve", lambda token_id, ahead: asked.append(ahead) or (True, 0.0))
    assert drain(ctx) == "drained"
    assert client.checked == [] and len(client.calls) == 1 and len(asked) == 1
    assert ctx.audience_ids[TARGET.name] == TARGET.audience  # confirmed by the delivery
    assert ctx.redis.exists(keys.ownership("dest", TARGET.advertiser_id, TARGET.audience))


def test_a_drain_held_up_past_its_slot_takes_a_new_one_before_calling(
        ctx: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    accept(ctx, ("add", 1))
    slots = iter([(True, 0.01), (True, 0.0)])  # the first 10 ms ahead; the second at once
    asked: list[float] = []

    def reserve(token_id: str, ahead: float) -> tuple[bool, float]:
        asked.append(ahead)
        return next(slots)

    real_sleep = asyncio.sleep

    async def held_up(delay: float) -> None:  # a busy event loop wakes the drain well after its slot
        await real_sleep(delay + 3 * LATE_SLOT)

    monkeypatch.setattr(ctx.limiter, "reserve", reserve)
    monkeypatch.setattr("worker.lane.asyncio.sleep", held_up)
    assert drain(ctx) == "drained"
    assert len(asked) == 2 and len(client.calls) == 1  # the late slot was left unused


def test_a_look_up_before_a_first_delivery_takes_a_slot_of_its_own(
        ctx: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    note_foreign_refusal(ctx.redis, "dest")  # the lane looks unconfirmed audiences up before sending to them
    accept(ctx, ("add", 1))
    slots = iter([(True, 0.0), (True, 0.08)])  # now, and 80 ms from now
    monkeypatch.setattr(ctx.limiter, "reserve", lambda token_id, ahead: next(slots))
    moments: dict[str, float] = {}
    check, send = client.get_audiences, client.send_rows

    async def timed_check(*args: Any) -> Any:
        moments["check"] = time.monotonic()
        return await check(*args)

    async def timed_send(*args: Any) -> Any:
        moments["send"] = time.monotonic()
        return await send(*args)

    monkeypatch.setattr(client, "get_audiences", timed_check)
    monkeypatch.setattr(client, "send_rows", timed_send)
    started = time.monotonic()
    assert drain(ctx) == "drained"
    assert client.checked == [TARGET.audience]
    assert moments["check"] - started < 0.08 <= moments["send"] - started  # each call in its own slot


def test_a_throttle_that_began_while_a_drain_waited_for_its_slot_stops_the_call(
        ctx: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    accept(ctx, ("add", 1))
    token_id = ctx.destinations.get("dest").token_id()

    def reserve(token_id_: str, ahead: float) -> tuple[bool, float]:
        ctx.redis.set(keys.cooldown(token_id), 1, px=2000)  # another worker was throttled meanwhile
        return True, 0.01

    monkeypatch.setattr(ctx.limiter, "reserve", reserve)
    assert drain(ctx) == "throttled"
    assert client.calls == []
    assert ctx.redis.zscore(keys.READY, "dest") > time.time() + 1


# -- locks and crashes ---------------------------------------------------------------------------------------


def test_a_drain_that_finds_its_lane_locked_looks_again_soon(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1))
    holder = LaneDrain(ctx, "dest")
    assert holder.lock.acquire()
    ctx.redis.zadd(keys.READY, {"dest": time.time() + 3600})  # as the scheduler's claim leaves it
    assert drain(ctx) == "busy"
    assert ctx.redis.zscore(keys.READY, "dest") <= time.time() + BUSY_RECHECK
    holder.lock.release()
    assert drain(ctx) == "drained"


def test_a_drainer_that_lost_its_lock_cuts_no_plan(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1))
    ctx.audience_ids[TARGET.name] = TARGET.audience  # no ownership call (and its slot's lock check) first
    drainer = LaneDrain(ctx, "dest")
    assert drainer.lock.acquire()
    ctx.redis.set(keys.lane_lock("dest"), b"another-drainer")  # its lock expired and was taken meanwhile
    with pytest.raises(Stop, match="lost-lock"):
        asyncio.run(drainer._rounds())  # as if between two plans, holding what it believes is its lock
    assert ctx.redis.exists(keys.lane_plan("dest")) == 0
    assert ctx.ledger.list() == [] and client.calls == []


def test_a_batch_whose_drainer_died_mid_call_is_sent_again_under_the_same_id(ctx: Any, client: Any) -> None:
    accept(ctx, *[("add", i) for i in range(150)])  # two batches: 100 and 50 rows
    client.script = [None, Killed()]
    with pytest.raises(Killed):
        drain(ctx)
    first = {r.id: r.status for r in ctx.ledger.list()}
    assert sorted(first.values()) == ["delivered", "delivering"]
    accept(ctx, ("add", 999))  # newer work waits behind the interrupted plan

    assert drain(ctx) == "drained"
    records = {r.id: r for r in ctx.ledger.list()}
    assert set(first) < set(records)
    assert all(r.status == "delivered" for r in records.values())
    assert [r.attempts for r in records.values() if first.get(r.id) == "delivering"] == [2]
    assert [len(c.rows) for c in client.calls] == [100, 50, 50, 1]
    sent_last = [row["EMAIL_SHA256"] for row in client.calls[-1].rows]
    assert sent_last == [email(999)]
    assert ctx.membership.size(TARGET.name) == 151


# -- settings -----------------------------------------------------------------------------------------------


def test_the_lock_outlasts_a_call_and_the_lease_outlasts_the_lock() -> None:
    default = Settings(TTA_HTTP_TIMEOUT=3)
    assert default.scheduler_lease > default.lock_ttl > default.http_timeout
    short = Settings(TTA_HTTP_TIMEOUT=3, TTA_LOCK_TTL=5)
    assert short.scheduler_lease > short.lock_ttl == 5
    with pytest.raises(ValueError, match="TTA_LOCK_TTL"):
        Settings(TTA_HTTP_TIMEOUT=3, TTA_LOCK_TTL=3)
