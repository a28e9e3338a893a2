"""Legacy createAudience requests: the tta:creates stream consumer and its dispatch."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from tests.support.worker import ADVERTISER, FakeTikTok
from worker import keys
from worker.creates import CONSUMER_LOCK, creates_due, process_creates
from worker.operator.audience_report import known_audiences
from worker.scheduler import Scheduler
from worker.target_lock import TargetLock
from worker.tiktok.errors import AuthError, PermanentError, TransientError


@pytest.fixture
def client() -> FakeTikTok:
    return FakeTikTok()


def request(ctx: Any, name: str, destination: str = "dest") -> None:
    entry = {"destination": destination, "advertiser_id": ADVERTISER, "name": name}
    ctx.redis.xadd(keys.CREATES, {"c": orjson.dumps(entry)})


def run(ctx: Any) -> Any:
    return asyncio.run(process_creates(ctx))


def test_each_name_is_created_once_and_the_stream_emptied(ctx: Any, client: FakeTikTok) -> None:
    request(ctx, "VIP buyers")
    request(ctx, "VIP buyers")  # a duplicate event
    request(ctx, "Churn risk")
    outcome = run(ctx)
    assert (outcome.created, outcome.duplicates) == (2, 1)
    assert client.creates == ["VIP buyers", "Churn risk"]
    assert ctx.redis.xlen(keys.CREATES) == 0
    stored = ctx.redis.get(keys.legacy_created("dest", ADVERTISER, "VIP buyers")).decode()
    assert client.audiences[stored] == (ADVERTISER, "VIP buyers")
    rows = {r["name"]: r for r in known_audiences(ctx.redis)}
    assert rows["VIP buyers"]["audience_id"] == stored and rows["VIP buyers"]["origin"] == "legacy-create"


def test_a_replayed_request_creates_nothing(ctx: Any, client: FakeTikTok) -> None:
    request(ctx, "VIP buyers")
    run(ctx)
    request(ctx, "VIP buyers")
    assert run(ctx).duplicates == 1
    assert client.creates == ["VIP buyers"]


def test_long_names_are_cut_and_dedupe_on_the_cut_name(ctx: Any, client: FakeTikTok) -> None:
    request(ctx, "n" * 80)
    request(ctx, "n" * 75)  # the same TikTok name once cut
    run(ctx)
    assert client.creates == ["n" * 67 + "..."]


def test_a_transient_failure_keeps_the_request_and_retries_later(ctx: Any, client: FakeTikTok) -> None:
    client.create_outcomes = [TransientError("System error", code=50000)]
    request(ctx, "VIP buyers")
    outcome = run(ctx)
    assert outcome.created == 0 and outcome.waiting == 1
    assert ctx.redis.xlen(keys.CREATES) == 1
    assert float(ctx.redis.get(keys.CREATES_RETRY_AT)) > time.time()
    failure = orjson.loads(ctx.redis.hget(keys.CREATE_FAILURES, f"dest|{ADVERTISER}|VIP buyers"))
    assert failure["status"] == "retrying" and failure["code"] == 50000
    assert not creates_due(ctx.redis)  # not before the backoff is over
    assert run(ctx).created == 1  # the task itself may run early (e.g. another dispatch); it simply works
    assert ctx.redis.xlen(keys.CREATES) == 0
    assert not ctx.redis.hexists(keys.CREATE_FAILURES, f"dest|{ADVERTISER}|VIP buyers")
    assert client.lists == 1  # it looked for an audience the failed attempt might have made


def test_a_permanent_failure_is_recorded_and_the_request_dropped(ctx: Any, client: FakeTikTok) -> None:
    client.create_outcomes = [PermanentError("advertiser_id: invalid", code=40002)]
    request(ctx, "VIP buyers")
    request(ctx, "Next one")
    outcome = run(ctx)
    assert (outcome.failed, outcome.created) == (1, 1)
    assert ctx.redis.xlen(keys.CREATES) == 0
    rows = [r for r in known_audiences(ctx.redis) if r["status"].startswith("create")]
    assert [(r["name"], r["status"]) for r in rows] == [("VIP buyers", "create failed")]
    assert "advertiser_id: invalid" in rows[0]["message"]


def test_an_auth_failure_pauses_the_destination_and_keeps_the_request(ctx: Any, client: FakeTikTok) -> None:
    client.create_outcomes = [AuthError("Access token is incorrect or has been revoked.", code=40105)]
    request(ctx, "VIP buyers")
    run(ctx)
    assert ctx.redis.exists(keys.paused("dest"))
    assert ctx.redis.xlen(keys.CREATES) == 1
    assert run(ctx).waiting == 1  # paused: no call is made
    assert client.creates == ["VIP buyers"]


def test_a_request_for_an_unknown_destination_is_a_recorded_failure(ctx: Any, client: FakeTikTok) -> None:
    request(ctx, "VIP buyers", destination="gone")
    assert run(ctx).failed == 1
    assert ctx.redis.xlen(keys.CREATES) == 0
    assert ctx.redis.hexists(keys.CREATE_FAILURES, f"gone|{ADVERTISER}|VIP buyers")


def test_one_consumer_at_a_time(ctx: Any, client: FakeTikTok) -> None:
    request(ctx, "VIP buyers")
    holder = TargetLock(ctx.redis, CONSUMER_LOCK, 10)
    assert holder.acquire()
    assert run(ctx).busy
    assert client.creates == []


def test_creates_due_only_with_work_and_once_per_lease(ctx: Any) -> None:
    assert not creates_due(ctx.redis)
    request(ctx, "VIP buyers")
    assert creates_due(ctx.redis)
    assert not creates_due(ctx.redis)  # another scheduler within the lease
    ctx.redis.delete(keys.CREATES_DISPATCH)
    ctx.redis.set(keys.CREATES_RETRY_AT, time.time() + 60)
    assert not creates_due(ctx.redis)


def test_the_scheduler_dispatches_the_consumer(ctx: Any) -> None:
    dispatched: list[str] = []
    scheduler = Scheduler(ctx.redis, ctx.settings, dispatched.append,
                          dispatch_creates=lambda: dispatched.append("creates"))
    assert not scheduler.check_creates()
    request(ctx, "VIP buyers")
    scheduler._next_creates_check = 0.0
    assert scheduler.check_creates()
    assert dispatched == ["creates"]
