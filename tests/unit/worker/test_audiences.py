"""Audience lifecycle in the worker: native auto-create (once, crash-safe), ownership checks, the report."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest

from tests.support.worker import ADVERTISER, TOKEN, FakeTikTok
from worker import keys
from worker.audiences import create_once
from worker.keys import Target
from worker.lane import LaneDrain
from worker.lane_resolve import CHECK_FIRST_FOR, note_foreign_refusal
from worker.operations import Operation
from worker.operator.audience_report import known_audiences
from worker.queue import enqueue
from worker.tiktok.errors import AuthError, PermanentError, ThrottledError, TransientError

OTHER_ADVERTISER = "7000000000000000009"
NATIVE = Target("dest", ADVERTISER, "@engaged")


@pytest.fixture
def client() -> FakeTikTok:  # replaces conftest's ScriptedClient in the ctx fixture
    return FakeTikTok()


def accept(ctx: Any, target: Target, *users: int, action: str = "add") -> None:
    operations = [Operation(target, action, email=f"{i:064x}") for i in users]  # type: ignore[arg-type]
    enqueue(ctx.redis, operations, flush_interval=0.0, batch_size=ctx.settings.batch_size,
            now=time.time() - 1)


def drain(ctx: Any, target: Target = NATIVE) -> str:
    return asyncio.run(LaneDrain(ctx, target.lane).run())


def records(ctx: Any) -> list[Any]:
    return sorted(ctx.ledger.list(limit=1000), key=lambda r: r.created_at)


# -- native auto-create -----------------------------------------------------------------------------------


def test_the_first_batch_creates_the_audience_and_later_batches_reuse_it(ctx: Any,
                                                                         client: FakeTikTok) -> None:
    accept(ctx, NATIVE, 1, 2)
    assert drain(ctx) == "drained"
    accept(ctx, NATIVE, 3)
    assert drain(ctx) == "drained"
    (audience_id,) = client.audiences
    assert client.creates == ["engaged"]
    assert client.sent == [("add", audience_id, 2), ("add", audience_id, 1)]
    assert [r.audience_id for r in records(ctx)] == [audience_id, audience_id]
    remembered = orjson.loads(ctx.redis.hget(keys.AUDIENCES, f"dest|{ADVERTISER}|{audience_id}"))
    assert remembered["origin"] == "auto-create" and remembered["name"] == "engaged"
    assert client.gets == []  # an audience we created needs no ownership check


def test_two_drainers_at_once_create_one_audience(ctx: Any, client: FakeTikTok) -> None:
    client.create_delay = 0.05
    accept(ctx, NATIVE, 1)

    async def both() -> list[str]:
        return list(await asyncio.gather(LaneDrain(ctx, NATIVE.lane).run(), LaneDrain(ctx, NATIVE.lane).run()))

    assert sorted(asyncio.run(both())) == ["busy", "drained"]
    assert client.creates == ["engaged"]


def test_a_create_whose_answer_was_lost_is_adopted_not_repeated(ctx: Any, client: FakeTikTok) -> None:
    id_key = keys.created_audience("dest", ADVERTISER, "engaged")
    client.lose_create_answer = True

    async def attempt() -> str:
        return await create_once(client, ctx.redis, TOKEN, destination="dest", advertiser_id=ADVERTISER,
                                 name="engaged", id_key=id_key, origin="auto-create")

    with pytest.raises(TransientError):
        asyncio.run(attempt())
    assert ctx.redis.exists(keys.create_intent(id_key))  # the attempt may have succeeded: remember that
    client.lose_create_answer = False
    audience_id = asyncio.run(attempt())
    assert client.creates == ["engaged"]  # the retry found it by name instead of creating a second
    assert list(client.audiences) == [audience_id]
    assert ctx.redis.get(id_key).decode() == audience_id
    assert not ctx.redis.exists(keys.create_intent(id_key))


def test_a_worker_killed_after_the_create_does_not_create_twice(ctx: Any, client: FakeTikTok) -> None:
    # What a crash between TikTok's answer and storing the id leaves: the marker, and the audience in TikTok.
    id_key = keys.created_audience("dest", ADVERTISER, "engaged")
    ctx.redis.set(keys.create_intent(id_key), b"{}")
    client.seed(ADVERTISER, "not it")
    existing = client.seed(ADVERTISER, "engaged")
    accept(ctx, NATIVE, 1)
    assert drain(ctx) == "drained"
    assert client.creates == []
    assert client.sent == [("add", existing, 1)]


def test_without_an_interrupted_attempt_no_search_is_made(ctx: Any, client: FakeTikTok) -> None:
    client.seed(ADVERTISER, "engaged")  # someone else's audience that happens to share the name
    accept(ctx, NATIVE, 1)
    drain(ctx)
    assert client.lists == 0
    assert client.creates == ["engaged"]


def test_an_interrupted_attempt_that_created_nothing_creates(ctx: Any, client: FakeTikTok) -> None:
    id_key = keys.created_audience("dest", ADVERTISER, "engaged")
    ctx.redis.set(keys.create_intent(id_key), b"{}")
    accept(ctx, NATIVE, 1)
    drain(ctx)
    assert client.lists == 1
    assert client.creates == ["engaged"]


def test_audience_names_over_70_characters_are_cut_to_67_and_an_ellipsis(ctx: Any,
                                                                          client: FakeTikTok) -> None:
    name = "k" * 90
    audience_id = asyncio.run(create_once(client, ctx.redis, TOKEN, destination="dest",
                                          advertiser_id=ADVERTISER, name=name, id_key="tta:test:id",
                                          origin="cli"))
    assert client.creates == ["k" * 67 + "..."]
    assert client.audiences[audience_id][1] == "k" * 67 + "..."


@pytest.mark.parametrize(("error", "outcome"), [
    (ThrottledError("Too many requests", code=40100), "throttled"),
    (AuthError("Access token is incorrect or has been revoked.", code=40105), "paused"),
])
def test_a_throttled_or_refused_token_stops_the_lane_and_the_operations_wait(
        ctx: Any, client: FakeTikTok, error: Exception, outcome: str) -> None:
    client.create_outcomes = [error]
    accept(ctx, NATIVE, 1)
    assert drain(ctx) == outcome
    assert records(ctx) == [] and client.sent == []
    assert ctx.redis.xlen(keys.stream(NATIVE.name)) == 1
    assert bool(ctx.redis.exists(keys.paused("dest"))) == (outcome == "paused")


def test_a_create_failing_transiently_backs_that_audience_off_and_the_others_go_on(
        ctx: Any, client: FakeTikTok) -> None:
    client.create_outcomes = [TransientError("System error", code=50000)]
    other = Target("dest", ADVERTISER, "@other")
    accept(ctx, NATIVE, 1)
    accept(ctx, other, 2)
    assert drain(ctx) == "drained"
    assert client.creates == ["engaged", "other"]
    assert [(action, rows) for action, _, rows in client.sent] == [("add", 1)]  # the other audience only
    assert ctx.redis.zscore(keys.lane_due("dest"), NATIVE.name) > time.time()  # due again after a backoff
    failure = orjson.loads(ctx.redis.hget(keys.resolve_failures("dest"), NATIVE.name))
    assert failure["failures"] == 1 and failure["next_at"] > time.time()


def test_a_create_failing_past_the_retry_window_is_dead_with_its_reason(ctx: Any, client: FakeTikTok) -> None:
    ctx.settings.retry_window = 0.0
    client.create_outcomes = [TransientError("System error", code=50000)]
    accept(ctx, NATIVE, 1)
    drain(ctx)
    assert [(r.status, r.last_code, r.last_message) for r in records(ctx)] == [("dead", 50000, "System error")]
    assert ctx.redis.xlen(keys.stream(NATIVE.name)) == 0


def test_a_create_tiktok_refuses_makes_the_operations_dead(ctx: Any, client: FakeTikTok) -> None:
    client.create_outcomes = [PermanentError("custom_audience_name: too long", code=40002)]
    accept(ctx, NATIVE, 1)
    assert drain(ctx) == "idle"
    (record,) = records(ctx)
    assert (record.status, record.last_message) == ("dead", "custom_audience_name: too long")


def test_after_a_failed_create_the_retry_creates_and_delivers(ctx: Any, client: FakeTikTok) -> None:
    client.create_outcomes = [TransientError("System error", code=50000)]
    accept(ctx, NATIVE, 1)
    drain(ctx)
    ctx.redis.hdel(keys.resolve_failures("dest"), NATIVE.name)  # its backoff is over
    ctx.redis.zadd(keys.lane_due("dest"), {NATIVE.name: 0})
    assert drain(ctx) == "drained"
    (audience_id,) = client.audiences
    assert len(client.creates) == 2 and client.lists == 1  # the retry looked for a lost create first
    assert client.sent == [("add", audience_id, 1)]


def test_creates_of_a_round_are_capped_while_mapping_work_waits(ctx: Any, client: FakeTikTok) -> None:
    ctx.settings.rate_limit_qps = 4  # three creates a round, then the mapping call for what is ready
    ready = Target("dest", ADVERTISER, "@ready")
    ctx.redis.set(keys.created_audience("dest", ADVERTISER, "ready"), client.seed(ADVERTISER, "ready"))
    accept(ctx, ready, 100)
    for n in range(7):
        accept(ctx, Target("dest", ADVERTISER, f"@a{n}"), n)
    assert drain(ctx) == "drained"
    assert len(client.creates) == 7
    # 3 creates and a call for the ready audience and those 3; then nothing is ready: the other 4 at once.
    assert client.mapping_calls == 2
    assert [rows for _, _, rows in client.sent[:4]] == [1, 1, 1, 1]
    assert len({a for _, a, _ in client.sent}) == 8


def test_with_nothing_ready_to_send_a_round_creates_all_it_may_then_sends_once(ctx: Any,
                                                                              client: FakeTikTok) -> None:
    ctx.settings.rate_limit_qps = 4
    for n in range(7):
        accept(ctx, Target("dest", ADVERTISER, f"@a{n}"), n)
    assert drain(ctx) == "drained"
    assert len(client.creates) == 7 and client.mapping_calls == 1


# -- ownership ----------------------------------------------------------------------------------------------


def check_first(ctx: Any) -> None:
    """Put the lane in the mode a foreign refusal leaves it in: unconfirmed audiences are looked up first."""
    note_foreign_refusal(ctx.redis, "dest")


def test_an_unconfirmed_audience_is_delivered_without_a_look_up_and_the_delivery_confirms_it(
        ctx: Any, client: FakeTikTok) -> None:
    audience_id = client.seed(ADVERTISER, "from a mapping")
    target = Target("dest", ADVERTISER, audience_id)
    accept(ctx, target, 1)
    drain(ctx, target)
    assert client.gets == [] and client.mapping_calls == 1
    assert ctx.redis.exists(keys.ownership("dest", ADVERTISER, audience_id))
    remembered = orjson.loads(ctx.redis.hget(keys.AUDIENCES, f"dest|{ADVERTISER}|{audience_id}"))
    assert remembered["origin"] == "delivered"
    ctx.audience_ids.clear()  # another worker process: the confirmation is read from Redis
    note_foreign_refusal(ctx.redis, "dest")  # even a lane that now looks up first needs no look-up for it
    accept(ctx, target, 2)
    drain(ctx, target)
    assert client.gets == [] and client.mapping_calls == 2
    assert [r.status for r in records(ctx)] == ["delivered", "delivered"]


def test_an_owned_audience_looked_up_first_is_checked_once_then_delivered(ctx: Any, client: FakeTikTok) -> None:
    check_first(ctx)
    audience_id = client.seed(ADVERTISER, "from a mapping")
    target = Target("dest", ADVERTISER, audience_id)
    accept(ctx, target, 1)
    drain(ctx, target)
    accept(ctx, target, 2)
    drain(ctx, target)
    assert client.gets == [audience_id]
    assert [r.status for r in records(ctx)] == ["delivered", "delivered"]
    assert ctx.redis.exists(keys.ownership("dest", ADVERTISER, audience_id))
    remembered = orjson.loads(ctx.redis.hget(keys.AUDIENCES, f"dest|{ADVERTISER}|{audience_id}"))
    assert remembered["origin"] == "checked" and remembered["name"] == "from a mapping"


def test_a_foreign_audience_in_a_mixed_request_dies_alone_with_tiktoks_answer(ctx: Any, client: FakeTikTok) -> None:
    mine = [client.seed(ADVERTISER, f"a{n}") for n in range(3)]
    foreign = client.seed(OTHER_ADVERTISER, "not ours")
    for n, audience_id in enumerate([mine[0], foreign, *mine[1:]]):
        accept(ctx, Target("dest", ADVERTISER, audience_id), n)
    assert drain(ctx) == "drained"
    assert client.gets == []
    assert client.mapping_audiences[0] == [mine[0], foreign, *mine[1:]]  # sent at once, unconfirmed
    dead = [r for r in records(ctx) if r.status == "dead"]
    assert [r.audience_id for r in dead] == [foreign]
    assert dead[0].last_code == 40002 and "does not exist" in dead[0].last_message
    assert dead[0].last_request_id.startswith("req-")
    assert sorted(a for r in records(ctx) if r.status == "delivered" for a in r.audiences) == sorted(mine)
    assert all(ctx.redis.exists(keys.ownership("dest", ADVERTISER, a)) for a in mine)
    assert not ctx.redis.exists(keys.ownership("dest", ADVERTISER, foreign))
    assert 0 < ctx.redis.ttl(keys.lane_check_first("dest")) <= CHECK_FIRST_FOR


def test_after_a_foreign_refusal_the_lane_looks_its_unconfirmed_audiences_up_first(
        ctx: Any, client: FakeTikTok) -> None:
    foreign = client.seed(OTHER_ADVERTISER, "not ours")
    accept(ctx, Target("dest", ADVERTISER, foreign), 1)
    drain(ctx)
    assert client.mapping_calls == 1 and client.gets == []  # the first foreign id costs a mapping call
    more_foreign = [client.seed(OTHER_ADVERTISER, f"theirs {n}") for n in range(3)]
    mine = client.seed(ADVERTISER, "ours")
    for n, audience_id in enumerate([*more_foreign, mine]):
        accept(ctx, Target("dest", ADVERTISER, audience_id), n)
    calls_before = client.mapping_calls
    drain(ctx)
    assert set(client.gets) == {*more_foreign, mine}  # looked up first, 100 ids a call (bisected on refusal)
    assert client.mapping_audiences[calls_before:] == [[mine]]  # no foreign id reached a mapping call
    dead = {r.audience_id: r for r in records(ctx) if r.status == "dead"}
    assert set(dead) == {foreign, *more_foreign}
    assert f"audience {more_foreign[0]} does not belong to advertiser {ADVERTISER}" in \
        dead[more_foreign[0]].last_message


def test_an_audience_looked_up_first_and_found_foreign_makes_its_batches_dead(ctx: Any, client: FakeTikTok) -> None:
    check_first(ctx)
    foreign = client.seed(OTHER_ADVERTISER, "not ours")
    mine = client.seed(ADVERTISER, "ours")
    bad, good = Target("dest", ADVERTISER, foreign), Target("dest", ADVERTISER, mine)
    accept(ctx, bad, 1)
    accept(ctx, good, 1)
    drain(ctx, bad)
    drain(ctx, good)
    by_audience = {r.audience_id: r for r in records(ctx)}
    assert by_audience[foreign].status == "dead"
    reason = by_audience[foreign].last_message
    assert f"audience {foreign} does not belong to advertiser {ADVERTISER}" in reason
    assert by_audience[mine].status == "delivered"
    assert client.sent == [("add", mine, 1)]  # nothing was ever sent to the foreign audience
    assert not ctx.redis.exists(keys.ownership("dest", ADVERTISER, foreign))


def test_an_empty_answer_is_not_proof_of_ownership(ctx: Any, client: FakeTikTok) -> None:
    check_first(ctx)
    async def empty(*_: Any) -> list[dict[str, Any]]:
        return []

    client.get_audiences = empty  # type: ignore[method-assign,assignment]
    accept(ctx, Target("dest", ADVERTISER, "123"), 1)
    drain(ctx)
    (record,) = records(ctx)
    assert record.status == "dead" and "does not return it" in record.last_message


def test_ids_looked_up_first_go_100_a_call_and_a_foreign_one_is_found_by_halves(
        ctx: Any, client: FakeTikTok) -> None:
    check_first(ctx)
    mine = [client.seed(ADVERTISER, f"a{n}") for n in range(150)]
    foreign = client.seed(OTHER_ADVERTISER, "theirs")
    for n, audience_id in enumerate([*mine[:70], foreign, *mine[70:]]):
        accept(ctx, Target("dest", ADVERTISER, audience_id), n)
    ctx.settings.batch_size = 10_000
    drain(ctx)
    calls_before_bisect = 2  # 151 ids: 100 + 51
    bisect_calls = len(client.gets) - 151
    assert 0 < bisect_calls <= 100 * 2  # halves of the refused call only
    assert len([r for r in records(ctx) if r.status == "dead"]) == 1
    assert {a for _, a, _ in client.sent} == set(mine)
    assert calls_before_bisect == 2


def test_a_throttled_ownership_check_waits_instead_of_killing_the_batch(ctx: Any, client: FakeTikTok) -> None:
    check_first(ctx)
    audience_id = client.seed(ADVERTISER, "ours")
    client.get_outcomes = [ThrottledError("Too many requests", code=40100)]
    target = Target("dest", ADVERTISER, audience_id)
    accept(ctx, target, 1)
    assert drain(ctx, target) == "throttled"
    assert records(ctx) == [] and ctx.redis.xlen(keys.stream(target.name)) == 1
    assert drain(ctx, target) == "drained"


# -- the report behind `audiences list` ------------------------------------------------------------------


def test_known_audiences_join_created_checked_and_pending_audiences(ctx: Any, client: FakeTikTok) -> None:
    check_first(ctx)  # the legacy list is looked up, so its row has its TikTok name
    mine = client.seed(ADVERTISER, "legacy list")
    accept(ctx, NATIVE, *range(1200))
    ctx.settings.batch_size = 10_000
    drain(ctx)
    accept(ctx, Target("dest", ADVERTISER, mine), 1, 2)
    drain(ctx, Target("dest", ADVERTISER, mine))
    accept(ctx, Target("dest", ADVERTISER, "@later"), 1)  # queued, not yet created
    rows = {r["name"]: r for r in known_audiences(ctx.redis)}
    assert rows["engaged"]["delivered_members"] == 1200 and rows["engaged"]["targetable"] is True
    assert rows["engaged"]["origin"] == "auto-create" and rows["engaged"]["audience_id"] in client.audiences
    assert rows["legacy list"]["delivered_members"] == 2 and rows["legacy list"]["targetable"] is False
    assert rows["later"]["audience_id"] is None and rows["later"]["status"] == "to create"
