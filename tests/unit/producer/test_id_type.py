"""The ID Type audience setting (context.personas.audience_settings.idType) and the mappings' id_type field:
the column advertising ids are sent in."""

from __future__ import annotations

from typing import Any

import pytest

from core.destinations import ConfigError, parse_destinations
from producer.routing import Router
from worker.operations import AAID_SHA256, IDFA_SHA256

ADVERTISER = "123"


def router(mapping: dict[str, Any], hashing: str = "normalized") -> Router:
    dest = {
        "id": "tiktok-main",
        "access_token_env": "TIKTOK_ACCESS_TOKEN",
        "advertiser_ids": [ADVERTISER],
        "hashing": hashing,
        "mappings": [mapping],
    }
    return Router.from_destinations(parse_destinations({"destinations": [dest]}))


def event(id_type: Any = None, *, device_type: str | None = None, email: str | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {"advertiserId": ADVERTISER}
    if id_type is not None:
        settings["idType"] = id_type
    device: dict[str, Any] = {"advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC"}
    if device_type:
        device["type"] = device_type
    return {
        "type": "track",
        "event": "Audience Entered",
        "messageId": "m-1",
        "properties": {"audience_key": "vip"},
        "context": {
            "device": device,
            "traits": {"email": email} if email else {},
            "personas": {"external_audience_id": "12345", "audience_settings": settings},
        },
    }


NATIVE = {"action": "addToAudience"}
LEGACY = {
    "action": "addUser",
    "fields": {"selected_advertiser_id": ADVERTISER, "audience_id": "777"},
}


@pytest.mark.parametrize(
    ("mapping", "setting", "column"),
    [
        (NATIVE, None, IDFA_SHA256),  # no ID Type: the advertising_id_type option's default
        (NATIVE, "IDFA_SHA256", IDFA_SHA256),
        (NATIVE, "AAID_SHA256", AAID_SHA256),
        (NATIVE, "GAID_SHA256", AAID_SHA256),  # Google's advertising id is Android's
        (NATIVE, "EMAIL_SHA256", IDFA_SHA256),  # an email audience leaves the option in charge
        ({**NATIVE, "fields": {"id_type": "AAID_SHA256"}}, None, AAID_SHA256),  # the mapping's id_type
        ({**NATIVE, "fields": {"id_type": "AAID_SHA256"}}, "IDFA_SHA256", IDFA_SHA256),  # the audience's wins
        ({**NATIVE, "fields": {"id_type": "GAID_SHA256"}}, "EMAIL_SHA256", AAID_SHA256),
        ({**LEGACY, "fields": {**LEGACY["fields"], "id_type": "GAID_SHA256"}}, None, AAID_SHA256),
        (LEGACY, "AAID_SHA256", IDFA_SHA256),  # audience settings belong to native audiences
    ],
)
def test_id_type_picks_the_advertising_id_column(mapping: dict[str, Any], setting: str | None, column: str) -> None:
    (operation,) = router(mapping).route(event(setting)).operations
    assert operation.advertising_id_type == column


def test_with_no_id_type_advertising_id_type_auto_still_reads_the_device() -> None:
    auto = {**NATIVE, "advertising_id_type": "auto"}
    (operation,) = router(auto).route(event(device_type="android")).operations
    assert operation.advertising_id_type == AAID_SHA256
    (operation,) = router(auto).route(event("IDFA_SHA256", device_type="android")).operations
    assert operation.advertising_id_type == IDFA_SHA256


def test_under_segment_hashing_advertising_ids_stay_where_segment_sent_them() -> None:
    (operation,) = router(NATIVE, hashing="segment").route(event("AAID_SHA256")).operations
    assert operation.advertising_id_type == IDFA_SHA256


def test_an_unknown_id_type_drops_the_advertising_id_and_says_why() -> None:
    result = router(NATIVE).route(event("MAID_SHA256", email="a@example.com"))
    (operation,) = result.operations
    assert operation.advertising_id == "" and operation.email
    assert result.dropped_identifiers == {"invalid_advertising_id": 1}
    alone = router(NATIVE).route(event("MAID_SHA256"))
    assert alone.rejection is not None and "idType 'MAID_SHA256' is not one of EMAIL_SHA256" in alone.rejection


@pytest.mark.parametrize("action", ["addToAudience", "removeUser", "createAudience"])
def test_a_mappings_id_type_is_checked_at_load(action: str) -> None:
    fields: dict[str, Any] = {"id_type": "PHONE_SHA256"}
    if action != "addToAudience":
        fields.update(selected_advertiser_id=ADVERTISER, audience_id="777", custom_audience_name="x")
        if action == "createAudience":
            del fields["audience_id"]
        else:
            del fields["custom_audience_name"]
    with pytest.raises(ConfigError, match="id_type must be one of EMAIL_SHA256, GAID_SHA256"):
        router({"action": action, "fields": fields})
