"""Limits on anything an event turns into a key or a TikTok audience: each refusal names the limit."""

from __future__ import annotations

import time
from typing import Any

import fakeredis
import pytest

from core.destinations import parse_destinations
from producer import limits as keys_limits
from producer.intake import AsyncIntake, StoreUnavailable, SyncIntake
from producer.limits import AUDIENCE_KEY_MAX, ID_MAX_DIGITS, NewAudienceGate
from producer.routing import Router
from tests.support.intake import settings
from worker import keys

ADVERTISER = "7000000000000000001"


def auto_creating_router(gate: NewAudienceGate | None = None) -> Router:
    return Router.from_destinations(parse_destinations({"destinations": [{
        "id": "tiktok-main", "access_token_env": "TIKTOK_ACCESS_TOKEN", "advertiser_ids": [ADVERTISER],
        "native": {"advertiser_id": ADVERTISER, "auto_create": True},
        "mappings": [{"action": "addToAudience"}, {"action": "removeFromAudience"},
                     {"action": "createAudience",
                      "fields": {"selected_advertiser_id": ADVERTISER,
                                 "custom_audience_name": {"@path": "$.properties.audience_name"}}}],
    }]}), audience_gate=gate)


def entered(i: int = 0, *, key: str = "vip", audience_id: str | None = None,
            advertiser: str = ADVERTISER) -> dict[str, Any]:
    personas: dict[str, Any] = {"computation_key": key, "audience_settings": {"advertiserId": advertiser}}
    if audience_id is not None:
        personas["external_audience_id"] = audience_id
    return {"type": "track", "event": "Audience Entered", "userId": f"u{i}", "messageId": f"m{i}",
            "properties": {"audience_key": key, key[:50]: True},
            "context": {"traits": {"email": f"p{i}@example.com"}, "personas": personas}}


def test_fourteen_one_mib_audience_keys_are_rejected_naming_the_limit_and_store_nothing() -> None:
    client = fakeredis.FakeRedis()
    intake = SyncIntake(auto_creating_router(), client, settings())
    events = [entered(i, key=f"k{i}" + "x" * 2**20) for i in range(14)]
    result = intake.accept(events)
    assert result.accepted == 0 and result.rejected == 14
    assert {r["code"] for r in result.results} == {"audience_key_too_long"}
    assert f"at most {AUDIENCE_KEY_MAX}" in result.results[0]["reason"]
    assert int(client.get(keys.BACKLOG) or 0) == 0 and client.scard(keys.TARGETS) == 0
    assert sum(len(k) + len(client.dump(k) or b"") for k in client.scan_iter()) < 100_000  # counters and log only


@pytest.mark.parametrize(("personas_change", "code"), [
    ({"computation_key": "vip audience"}, "invalid_field"),
    ({"computation_key": "vip\n"}, None),  # surrounding blanks are trimmed, as before
    ({"external_audience_id": "9" * (ID_MAX_DIGITS + 1)}, "id_too_long"),
    ({"external_audience_id": "12ab"}, "invalid_field"),
    ({"external_audience_id": "\uff11\uff12\uff13"}, "invalid_field"),  # full-width digits: str.isdigit says yes
])
def test_audience_keys_and_ids_are_checked(personas_change: dict[str, Any], code: str | None) -> None:
    event = entered()
    event["context"]["personas"].update(personas_change)
    result = auto_creating_router().route(event)
    assert result.rejection_code == code, result.rejection


def test_a_legacy_audience_name_is_bounded() -> None:
    router = auto_creating_router()
    event = {"type": "track", "event": "Create Audience", "userId": "ops", "messageId": "c1",
             "properties": {"audience_name": "n" * 200}}
    assert router.route(event).rejection_code == "audience_name_too_long"
    event["properties"]["audience_name"] = "fine name"
    assert router.route(event).creates


def test_300_new_audience_keys_in_one_request_create_at_most_the_cap() -> None:
    now = [1_000.0]
    client = fakeredis.FakeRedis()
    intake = SyncIntake(auto_creating_router(NewAudienceGate(20, clock=lambda: now[0])), client, settings())
    result = intake.accept([entered(i, key=f"aud_{i}") for i in range(300)])
    assert (result.accepted, result.rejected) == (20, 280)
    assert {r["code"] for r in result.results} == {"new_audience_limit"}
    assert "TTA_NEW_AUDIENCES_PER_MINUTE" in result.results[0]["reason"]
    assert client.scard(keys.TARGETS) == 20
    # Known audiences are not new: more events for them go through, this minute and later ones.
    assert intake.accept([entered(1000 + i, key=f"aud_{i}") for i in range(20)]).rejected == 0
    now[0] += 60
    assert intake.accept([entered(i, key=f"next_{i}") for i in range(25)]).rejected == 5


def test_audiences_the_queue_already_knows_are_not_new() -> None:
    client = fakeredis.FakeRedis()
    client.sadd(keys.TARGETS, *[f"tiktok-main|{ADVERTISER}|@old_{i}" for i in range(5)])
    intake = SyncIntake(auto_creating_router(NewAudienceGate(1)), client, settings())
    assert intake.accept([entered(i, key=f"old_{i}") for i in range(5)]).rejected == 0
    assert intake.accept([entered(9, key="brand_new")]).rejected == 0
    assert [r["code"] for r in intake.accept([entered(10, key="another_new")]).results] == ["new_audience_limit"]


def test_the_cap_is_shared_by_every_intake_process_through_redis() -> None:
    client = fakeredis.FakeRedis()
    first, second = (SyncIntake(auto_creating_router(NewAudienceGate(10)), client, settings()) for _ in range(2))
    assert first.accept([entered(i, key=f"aud_{i}") for i in range(6)]).rejected == 0
    result = second.accept([entered(i, key=f"other_{i}") for i in range(6)])
    assert (result.accepted, result.rejected) == (4, 2)  # 10 per minute across both, not 10 each
    # An audience the other process introduced this minute is not new again.
    assert second.accept([entered(50, key="aud_0")]).rejected == 0


def test_the_rejection_names_each_refused_event_and_the_rest_of_the_request_goes_through() -> None:
    client = fakeredis.FakeRedis()
    intake = SyncIntake(auto_creating_router(NewAudienceGate(2)), client, settings())
    events = [entered(0, key="a"), entered(1, key="b"), entered(2, key="c"), entered(3, key="a"),
              entered(4, audience_id="123456")]
    result = intake.accept(events)
    assert [r["index"] for r in result.results] == [2]
    assert client.smembers(keys.TARGETS) == {f"tiktok-main|{ADVERTISER}|{a}".encode()
                                             for a in ("@a", "@b", "123456")}


class CountingRedis(fakeredis.FakeRedis):
    evals = 0

    def eval(self, *args: Any) -> Any:
        CountingRedis.evals += 1
        return super().eval(*args)


def test_one_round_trip_per_request_that_brings_new_audiences_none_for_known_ones() -> None:
    client = CountingRedis()
    intake = SyncIntake(auto_creating_router(NewAudienceGate(100)), client, settings())
    intake.accept([entered(i, key=f"aud_{i % 7}") for i in range(500)])
    assert CountingRedis.evals == 1
    intake.accept([entered(i, key=f"aud_{i % 7}") for i in range(500)])
    intake.accept([entered(1, audience_id="123456")])  # an existing TikTok audience is never new
    assert CountingRedis.evals == 1


class EvalDown(fakeredis.FakeRedis):
    down = True

    def eval(self, *args: Any) -> Any:
        import redis

        if EvalDown.down:
            raise redis.ConnectionError("down")
        return super().eval(*args)


def test_without_redis_nothing_is_admitted_and_the_next_request_asks_again() -> None:
    client = EvalDown()
    intake = SyncIntake(auto_creating_router(NewAudienceGate(1)), client, settings())
    with pytest.raises(StoreUnavailable):
        intake.accept([entered(0, key="a")])
    EvalDown.down = False
    client.sadd(keys_limits.new_audiences_key("tiktok-main", int(time.time() // 60)), "someone_else")
    assert [r["code"] for r in intake.accept([entered(0, key="a")]).results] == ["new_audience_limit"]


def test_a_legacy_create_redis_has_made_is_not_new() -> None:
    client = fakeredis.FakeRedis()
    client.set(keys.legacy_created("tiktok-main", ADVERTISER, "old name"), "123")
    intake = SyncIntake(auto_creating_router(NewAudienceGate(1)), client, settings())

    def create(name: str) -> dict[str, Any]:
        return {"type": "track", "event": "Create Audience", "userId": "ops", "messageId": name,
                "properties": {"audience_name": name}}

    assert intake.accept([create("old name"), create("new one")]).rejected == 0
    assert [r["code"] for r in intake.accept([create("third")]).results] == ["new_audience_limit"]


@pytest.mark.asyncio
async def test_the_async_intake_asks_redis_the_same_way() -> None:
    import fakeredis.aioredis

    client = fakeredis.aioredis.FakeRedis()
    intake = AsyncIntake(auto_creating_router(NewAudienceGate(3)), client, settings())
    result = await intake.accept_async([entered(i, key=f"aud_{i}") for i in range(5)])
    assert (result.accepted, result.rejected) == (3, 2)
    assert await client.scard(keys.TARGETS) == 3
