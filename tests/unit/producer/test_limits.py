"""Limits on anything an event turns into a key or a TikTok audience: each refusal names the limit."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from producer.intake import Intake
from producer.limits import AUDIENCE_KEY_MAX, ID_MAX_DIGITS, NewAudienceGate
from producer.routing import Router
from tests.unit.producer.intake_fakes import settings
from worker import keys
from worker.destinations import parse_destinations

ADVERTISER = "7000000000000000001"


def auto_creating_router(gate: NewAudienceGate | None = None) -> Router:
    router = Router.from_destinations(parse_destinations({"destinations": [{
        "id": "tiktok-main", "access_token_env": "TIKTOK_ACCESS_TOKEN", "advertiser_ids": [ADVERTISER],
        "native": {"advertiser_id": ADVERTISER, "auto_create": True},
        "mappings": [{"action": "addToAudience"}, {"action": "removeFromAudience"},
                     {"action": "createAudience",
                      "fields": {"selected_advertiser_id": ADVERTISER,
                                 "custom_audience_name": {"@path": "$.properties.audience_name"}}}],
    }]}))
    router.audience_gate = gate
    return router


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
    intake = Intake(auto_creating_router(), client, settings())
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
    intake = Intake(auto_creating_router(NewAudienceGate(20, clock=lambda: now[0])), client, settings())
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
    gate = NewAudienceGate(1)
    gate.learn([f"tiktok-main|{ADVERTISER}|@old_{i}" for i in range(5)])
    router = auto_creating_router(gate)
    assert all(router.route(entered(i, key=f"old_{i}")).rejection is None for i in range(5))
    assert router.route(entered(9, key="brand_new")).rejection is None
    assert router.route(entered(10, key="another_new")).rejection_code == "new_audience_limit"
