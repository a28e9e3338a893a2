"""Resync: an audience's current members, read back from the membership record's hashed identifiers, are
enqueued as adds with their recorded event time (one ms later), and lanes deliver them as any operation."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.support.worker import ADVERTISER
from worker import keys
from worker.keys import Target
from worker.lane import LaneDrain
from worker.membership import identifiers_key, member_key
from worker.operations import EMAIL_SHA256, Operation, PackedOperation
from worker.operator.resync import enqueue_adds, member_chunks, targets_of
from worker.queue import enqueue

TARGET = Target("dest", ADVERTISER, "1234")
EVENT_MS = 1_765_000_000_000


def email(i: int) -> str:
    return f"{i:064x}"


def accept(ctx: Any, *ops: tuple[str, int, int], target: Target = TARGET) -> None:
    operations = [Operation(target, action, email=email(i), event_ms=ms, message_id=f"m{i}-{ms}")  # type: ignore[arg-type]
                  for action, i, ms in ops]
    enqueue(ctx.redis, operations, flush_interval=0.0, batch_size=ctx.settings.batch_size, now=time.time() - 1)
    time.sleep(0.002)


def drain(ctx: Any) -> str:
    return asyncio.run(LaneDrain(ctx, "dest").run())


def adds_of(ctx: Any, target: str = TARGET.name) -> list[list[Any]]:
    return [row for chunk in member_chunks(ctx.redis, target) for row in chunk.adds]


def resync(ctx: Any, target: str = TARGET.name) -> None:
    enqueue_adds(ctx.redis, target, adds_of(ctx, target), flush_interval=0.0, batch_size=ctx.settings.batch_size)
    time.sleep(0.002)


def test_current_members_are_read_back_as_adds_at_their_recorded_time(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1, EVENT_MS), ("add", 2, EVENT_MS + 5), ("add", 3, EVENT_MS), ("delete", 3, EVENT_MS + 9))
    drain(ctx)
    assert sorted(adds_of(ctx)) == [["a", email(1), "", "", "", EVENT_MS + 1, ""],
                                    ["a", email(2), "", "", "", EVENT_MS + 6, ""]]


def test_a_resync_is_delivered_through_the_lane_and_counted_once(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1, EVENT_MS), ("add", 2, EVENT_MS))
    drain(ctx)
    client.calls.clear()
    resync(ctx)
    assert drain(ctx) == "drained"
    assert [(c.action, sorted(r[EMAIL_SHA256] for r in c.rows)) for c in client.calls] == [
        ("add", [email(1), email(2)])]
    assert ctx.membership.size(TARGET.name) == 2
    assert [r.status for r in ctx.ledger.list(limit=10)] == ["delivered", "delivered"]


def test_a_newer_event_still_wins_over_a_resync_queued_before_it_is_delivered(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1, EVENT_MS))
    drain(ctx)
    client.calls.clear()
    resync(ctx)
    accept(ctx, ("delete", 1, EVENT_MS + 60_000))  # the user left after the add the resync re-sends
    drain(ctx)
    assert [c.action for c in client.calls] == ["delete"]
    assert ctx.membership.size(TARGET.name) == 0
    assert adds_of(ctx) == []


def test_members_recorded_without_identifiers_are_counted_not_sent(ctx: Any, client: Any) -> None:
    accept(ctx, ("add", 1, EVENT_MS), ("add", 2, EVENT_MS))
    drain(ctx)
    ctx.redis.hdel(identifiers_key(TARGET.name), member_key(PackedOperation("add", email(2), "", "", "")))
    (chunk,) = list(member_chunks(ctx.redis, TARGET.name))
    assert (len(chunk.adds), chunk.without_identifiers) == (1, 1)


def test_an_audience_is_found_by_target_audience_id_or_engage_key(ctx: Any, client: Any) -> None:
    created = Target("dest", ADVERTISER, "@vip_users")
    accept(ctx, ("add", 1, EVENT_MS))
    accept(ctx, ("add", 1, EVENT_MS), target=created)
    drain(ctx)
    created_id = ctx.redis.get(keys.created_audience("dest", ADVERTISER, "vip_users")).decode()
    assert targets_of(ctx.redis, "1234") == [TARGET.name]
    assert targets_of(ctx.redis, TARGET.name) == [TARGET.name]
    assert targets_of(ctx.redis, created_id) == [created.name]
    assert targets_of(ctx.redis, "@vip_users") == [created.name]
    assert targets_of(ctx.redis, "vip_users") == [created.name]
    assert targets_of(ctx.redis, "999") == []
