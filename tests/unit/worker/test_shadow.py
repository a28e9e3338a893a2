"""Shadow mode: a shadow destination runs everything up to the TikTok call, records each would-be request in
the ledger (status ``shadow``) instead of sending it, creates nothing, and leaves the membership record alone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from core.destinations import Destination, parse_destinations
from tests.support.worker import ADVERTISER
from worker import keys
from worker.keys import Target
from worker.lane import LaneDrain
from worker.operations import Operation
from worker.operator.shadow_report import shadow_report
from worker.queue import enqueue

TARGET = Target("dest", ADVERTISER, "1234")
NEW = Target("dest", ADVERTISER, "@vip_users")


@pytest.fixture
def destination(monkeypatch: pytest.MonkeyPatch) -> Destination:
    monkeypatch.setenv("UNIT_TOKEN", "unit-test-token")
    return parse_destinations({"destinations": [{
        "id": "dest", "access_token_env": "UNIT_TOKEN", "advertiser_ids": [ADVERTISER], "mode": "shadow",
        "native": {"advertiser_id": ADVERTISER, "auto_create": True},
    }]}).destinations[0]


def email(i: int) -> str:
    return f"{i:064x}"


def accept(ctx: Any, *ops: tuple[str, int], target: Target = TARGET) -> None:
    enqueue(ctx.redis, [Operation(target, action, email=email(i)) for action, i in ops],  # type: ignore[arg-type]
            flush_interval=0.0, batch_size=ctx.settings.batch_size, now=time.time() - 1)
    time.sleep(0.002)


def drain(ctx: Any) -> str:
    return asyncio.run(LaneDrain(ctx, "dest").run())


def test_the_mode_defaults_to_live_and_refuses_anything_else() -> None:
    base = {"id": "d", "access_token_env": "T", "advertiser_ids": ["1"]}
    assert parse_destinations({"destinations": [base]}).destinations[0].mode == "live"
    with pytest.raises(Exception, match="mode"):
        parse_destinations({"destinations": [{**base, "mode": "dry"}]})


def test_a_shadow_destination_records_requests_and_calls_tiktok_never(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1), ("add", 2), ("delete", 3))
    assert drain(ctx) == "drained"
    assert client.calls == [] and client.checked == [] and client.created == []
    records = ctx.ledger.list(status="shadow")
    assert sorted((r.action, r.audiences) for r in records) == [("add", {"1234": 2}), ("delete", {"1234": 1})]
    assert ctx.redis.xlen(keys.stream(TARGET.name)) == 0  # consumed, as a delivery would
    assert all(ctx.ledger.payload(r.id) is None for r in records)


class NoSlots:
    def reserve(self, token_id: str, ahead: float) -> tuple[bool, float]:
        raise AssertionError("a shadow lane must not spend the token's rate limit")

    def throttle(self, token_id: str, seconds: float) -> None:
        raise AssertionError("a shadow lane is never throttled")


def test_a_shadow_lane_spends_none_of_the_tokens_rate_limit(ctx: Any, client: Any) -> None:
    ctx.limiter = NoSlots()
    accept(ctx, ("add", 1), ("add", 2))
    accept(ctx, ("add", 3), target=NEW)
    assert drain(ctx) == "drained"
    assert sum(r.rows for r in ctx.ledger.list(status="shadow")) == 3


def test_shadow_records_expire_like_delivered_ones(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1))
    drain(ctx)
    (record,) = ctx.ledger.list(status="shadow")
    assert 0 < ctx.redis.ttl(keys.batch(record.id)) <= 3600
    assert [r.id for r in ctx.ledger.list(status="delivered")] == []


def test_shadow_leaves_the_membership_record_alone(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1))
    drain(ctx)
    assert ctx.membership.size(TARGET.name) == 0
    assert not ctx.redis.exists(keys.membership(TARGET.name))
    accept(ctx, ("add", 1))  # the same user again: counted again, as every event is in Segment's overview
    drain(ctx)
    assert sum(r.rows for r in ctx.ledger.list(status="shadow")) == 2


def test_an_audience_a_live_destination_would_create_is_recorded_not_created(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1), ("add", 2), target=NEW)
    drain(ctx)
    assert client.created == []
    assert not ctx.redis.exists(keys.created_audience("dest", ADVERTISER, "vip_users"))
    assert ctx.redis.smembers(keys.shadow_creates("dest")) == {f"{ADVERTISER}|vip_users".encode()}
    report = shadow_report(ctx.redis, ctx.ledger, 0, time.time() + 1)
    assert [(a.audience_id, a.adds, a.would_create) for a in report.audiences] == [
        ("would-create:vip_users", 2, True)]


def test_an_audience_created_before_is_reported_under_its_id(ctx: Any, client: Any) -> None:
    ctx.redis.set(keys.created_audience("dest", ADVERTISER, "vip_users"), "900000000000000042")
    accept(ctx, ("add", 1), target=NEW)
    drain(ctx)
    assert [r.audiences for r in ctx.ledger.list(status="shadow")] == [{"900000000000000042": 1}]


def test_the_report_sums_adds_and_removes_per_audience_within_the_range(ctx: Any, client: Any) -> None:
    other = Target("dest", ADVERTISER, "5678")
    accept(ctx, ("add", 1), ("add", 2))
    accept(ctx, ("delete", 3), target=other)
    drain(ctx)
    started = time.time()
    time.sleep(0.01)
    accept(ctx, ("add", 4), ("delete", 5))
    drain(ctx)
    everything = shadow_report(ctx.redis, ctx.ledger, 0, time.time() + 1)
    assert [(a.audience_id, a.adds, a.removes) for a in everything.audiences] == [("1234", 3, 1), ("5678", 0, 1)]
    later = shadow_report(ctx.redis, ctx.ledger, started, time.time() + 1)
    assert [(a.audience_id, a.adds, a.removes) for a in later.audiences] == [("1234", 1, 1)]
    only = shadow_report(ctx.redis, ctx.ledger, 0, time.time() + 1, audience_id="5678")
    assert [(a.audience_id, a.removes) for a in only.audiences] == [("5678", 1)]
    assert shadow_report(ctx.redis, ctx.ledger, 0, started - 3600).audiences == []
