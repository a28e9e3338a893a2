"""Routing: an event and a destinations file in, operations (or one clear rejection) out."""

from __future__ import annotations

from typing import Any

import pytest

from core.destinations import parse_destinations
from producer.routing import NO_IDENTIFIER, AudienceCreate, Router, RouteResult
from tests.support.routing import (
    ADVERTISER,
    AUDIENCE,
    NATIVE_ADVERTISER,
    OTHER_ADVERTISER,
    accepted,
    dest,
    engage,
    op,
    router,
)
from worker.keys import Target

# ----------------------------------------------------------------------------------------------- native


def test_add_to_audience() -> None:
    result = router("addToAudience").route(engage())
    assert accepted(result) == [op("add")]
    assert result.matched_mappings == 1
    assert result.creates == [] and result.dropped_identifiers == {}


def test_remove_from_audience() -> None:
    assert accepted(router("removeFromAudience").route(engage("Audience Exited", member=False))) == [
        op("delete")
    ]


def test_native_actions_ignore_events_of_the_other_kind() -> None:
    result = router("removeFromAudience").route(engage("Audience Entered"))
    assert result == RouteResult(matched_mappings=0)


def test_an_event_matching_no_mapping() -> None:
    result = router("addToAudience", "removeFromAudience").route(
        {"type": "page", "userId": "u", "name": "Home"}
    )
    assert result.matched_mappings == 0
    assert result.operations == [] and result.rejection is None


def test_native_advertiser_falls_back_to_the_destinations() -> None:
    personas = {"computation_key": "vip", "external_audience_id": AUDIENCE}  # no audience_settings
    r = router("addToAudience", native={"advertiser_id": NATIVE_ADVERTISER})
    assert accepted(r.route(engage(personas=personas))) == [
        op(target=Target("tiktok-main", NATIVE_ADVERTISER, AUDIENCE))
    ]


def test_the_events_advertiser_wins_over_the_fallback() -> None:
    r = router("addToAudience", native={"advertiser_id": NATIVE_ADVERTISER})
    assert accepted(r.route(engage())) == [op()]


def test_numeric_advertiser_and_audience_ids_are_read_as_text() -> None:
    personas = {
        "computation_key": "vip",
        "external_audience_id": 1234345,
        "audience_settings": {"advertiserId": int(ADVERTISER)},
    }
    assert accepted(router("addToAudience").route(engage(personas=personas))) == [op()]


def test_advertiser_not_allowed_is_rejected_naming_it() -> None:
    personas = {
        "computation_key": "vip",
        "external_audience_id": AUDIENCE,
        "audience_settings": {"advertiserId": "7999"},
    }
    result = router("addToAudience").route(engage(personas=personas))
    assert result.operations == []
    assert result.rejection_code == "advertiser_not_allowed"
    assert result.rejection == (
        "mapping 1 (addToAudience): advertiser 7999 (context.personas.audience_settings.advertiserId) "
        "is not one of destination 'tiktok-main''s advertiser_ids"
    )


def test_no_advertiser_anywhere_is_rejected() -> None:
    result = router("addToAudience").route(engage(personas={"external_audience_id": AUDIENCE}))
    assert result.rejection_code == "missing_advertiser"
    assert "context.personas.audience_settings.advertiserId" in (result.rejection or "")
    assert "native.advertiser_id" in (result.rejection or "")


def test_without_an_audience_id_auto_create_targets_the_audience_key() -> None:
    personas = {"computation_key": "vip", "audience_settings": {"advertiserId": ADVERTISER}}
    r = router("addToAudience", native={"auto_create": True})
    (operation,) = accepted(r.route(engage(personas=personas)))
    assert operation.target == Target("tiktok-main", ADVERTISER, "@vip")
    assert operation.target.needs_audience and operation.target.audience_key == "vip"


def test_without_an_audience_id_or_auto_create_the_event_is_rejected_naming_the_field() -> None:
    personas = {"computation_key": "vip", "audience_settings": {"advertiserId": ADVERTISER}}
    result = router("addToAudience").route(engage(personas=personas))
    assert result.operations == []
    assert result.rejection_code == "missing_audience_id"
    assert result.rejection is not None
    assert result.rejection.startswith("mapping 1 (addToAudience): external_audience_id has no value")
    assert "native.auto_create" in result.rejection


def test_auto_create_needs_a_computation_key() -> None:
    r = router("addToAudience", native={"auto_create": True})
    result = r.route(engage(personas={"audience_settings": {"advertiserId": ADVERTISER}}))
    assert result.rejection_code == "missing_audience_id"
    assert "context.personas.computation_key" in (result.rejection or "")


def test_an_audience_id_a_target_cannot_hold_is_rejected() -> None:
    personas = {"external_audience_id": "12 34", "audience_settings": {"advertiserId": ADVERTISER}}
    result = router("addToAudience").route(engage(personas=personas))
    assert result.rejection_code == "invalid_field"
    assert "external_audience_id" in (result.rejection or "")


def test_custom_external_audience_id_field() -> None:
    r = router(
        {
            "action": "addToAudience",
            "fields": {"external_audience_id": {"@path": "$.properties.tiktok_audience"}},
        }
    )
    event = engage()
    event["properties"]["tiktok_audience"] = "555"
    assert accepted(r.route(event)) == [op(target=Target("tiktok-main", ADVERTISER, "555"))]


# -------------------------------------------------------------------------------------------------- sync


def test_sync_true_adds_and_false_removes() -> None:
    r = router("syncAudience")
    assert accepted(r.route(engage(member=True))) == [op("add")]
    assert accepted(r.route(engage("Audience Exited", member=False))) == [op("delete")]


def test_sync_reads_traits_on_identify() -> None:
    identify = {
        "type": "identify",
        "userId": "user-1",
        "traits": {"vip": False},
        "context": engage()["context"],
    }
    r = router({"action": "syncAudience", "subscribe": 'type = "identify"'})
    assert accepted(r.route(identify)) == [op("delete")]


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ("true", "properties.vip must be true or false, not a string"),
        (1, "properties.vip must be true or false, not a number"),
        (None, "properties.vip is missing: it must be true (add) or false (remove)"),
    ],
)
def test_sync_needs_a_boolean_membership(member: Any, reason: str) -> None:
    result = router("syncAudience").route(engage(member=member))
    assert result.operations == []
    assert result.rejection == f"mapping 1 (syncAudience): {reason}"
    assert result.rejection_code == "invalid_membership"


def test_sync_needs_the_computation_key() -> None:
    personas = {"external_audience_id": AUDIENCE, "audience_settings": {"advertiserId": ADVERTISER}}
    result = router("syncAudience").route(engage(personas=personas))
    assert result.rejection_code == "invalid_membership"
    assert "context.personas.computation_key" in (result.rejection or "")


def test_sync_and_add_on_one_event_send_the_operation_once() -> None:
    result = router("addToAudience", "removeFromAudience", "syncAudience").route(engage())
    assert accepted(result) == [op("add")]
    assert result.matched_mappings == 2


# -------------------------------------------------------------------------------------------------- legacy


LEGACY = {"selected_advertiser_id": OTHER_ADVERTISER, "audience_id": "987"}


def test_add_user_and_remove_user_use_the_mappings_advertiser_and_audience() -> None:
    r = router({"action": "addUser", "fields": LEGACY}, {"action": "removeUser", "fields": LEGACY})
    target = Target("tiktok-main", OTHER_ADVERTISER, "987")
    assert accepted(r.route(engage())) == [op("add", target=target)]
    assert accepted(r.route(engage("Audience Exited"))) == [op("delete", target=target)]


def test_legacy_advertiser_from_a_directive_is_checked_per_event() -> None:
    fields = {"selected_advertiser_id": {"@path": "$.properties.adv"}, "audience_id": "987"}
    r = router({"action": "addUser", "fields": fields})
    event = engage()
    event["properties"]["adv"] = "7999"
    result = r.route(event)
    assert result.rejection_code == "advertiser_not_allowed"
    assert result.rejection == (
        "mapping 1 (addUser): selected_advertiser_id 7999 is not one of "
        "destination 'tiktok-main''s advertiser_ids"
    )
    del event["properties"]["adv"]
    assert router({"action": "addUser", "fields": fields}).route(event).rejection_code == "missing_advertiser"


def test_legacy_custom_subscription() -> None:
    r = router(
        {
            "action": "addUser",
            "subscribe": 'event = "Audience Entered" and properties.audience_key = "gold"',
            "fields": LEGACY,
        }
    )
    assert r.route(engage()).matched_mappings == 0
    gold = engage()
    gold["properties"]["audience_key"] = "gold"
    assert len(accepted(r.route(gold))) == 1


def test_create_audience() -> None:
    fields = {
        "selected_advertiser_id": ADVERTISER,
        "custom_audience_name": {"@path": "$.properties.audience_name"},
    }
    r = router({"action": "createAudience", "fields": fields})
    event = {
        "type": "track",
        "event": "Create Audience",
        "userId": "ops",
        "properties": {"audience_name": "VIP buyers"},
    }
    result = r.route(event)
    assert result.rejection is None
    assert result.creates == [AudienceCreate("tiktok-main", ADVERTISER, "VIP buyers")]
    assert result.operations == [] and result.matched_mappings == 1
    del event["properties"]["audience_name"]
    missing = r.route(event)
    assert (missing.rejection, missing.rejection_code) == (
        "mapping 1 (createAudience): custom_audience_name has no value",
        "missing_field",
    )


# --------------------------------------------------------------------------------------- whole-event rules


def test_one_mappings_refusal_does_not_block_another() -> None:
    # addToAudience can send this event; syncAudience cannot (no boolean membership): the add still goes.
    result = router("addToAudience", "syncAudience").route(engage(member="yes"))
    assert accepted(result) == [op()]
    assert result.matched_mappings == 2
    assert [o.describe() for o in result.outcomes] == [
        {"destination": "tiktok-main", "mapping": 1, "action": "addToAudience", "status": "accepted"},
        {"destination": "tiktok-main", "mapping": 2, "action": "syncAudience", "status": "rejected",
         "code": "invalid_membership",
         "reason": "mapping 2 (syncAudience): properties.vip must be true or false, not a string"},
    ]


def test_the_event_is_rejected_only_when_every_matched_mapping_refuses_it() -> None:
    result = router("addToAudience", "syncAudience").route(engage(member="yes", traits={}))
    assert result.operations == [] and result.creates == []
    assert result.rejection == (f"mapping 1 (addToAudience): {NO_IDENTIFIER}; "
                                f"mapping 2 (syncAudience): {NO_IDENTIFIER}")
    assert result.rejection_code == "no_identifier"
    assert (result.rejected_destination, result.rejected_mapping) == ("tiktok-main", 1)
    assert [o.code for o in result.refusals] == ["no_identifier", "no_identifier"]


def test_a_create_audience_event_is_created_though_sync_audience_refuses_it() -> None:
    create = {"action": "createAudience",
              "fields": {"selected_advertiser_id": ADVERTISER, "custom_audience_name": {"@path": "$.properties.name"}}}
    event = {"type": "track", "event": "Create Audience", "userId": "u1", "properties": {"name": "Buyers"}}
    result = router("syncAudience", create).route(event)
    assert result.rejection is None
    assert result.creates == [AudienceCreate("tiktok-main", ADVERTISER, "Buyers")]
    assert [(o.action, o.code) for o in result.outcomes] == [("syncAudience", "no_identifier"),
                                                             ("createAudience", None)]


def test_an_event_no_mapping_subscribes_to_matches_nothing_and_is_not_rejected() -> None:
    result = router("addToAudience", "removeFromAudience").route(engage("Order Completed"))
    assert result == RouteResult(matched_mappings=0)


def test_a_refusal_in_another_destination_does_not_block_the_first() -> None:
    data = {"destinations": [dest("addToAudience", dest_id="first"), dest("addToAudience", dest_id="second")]}
    data["destinations"][1]["advertiser_ids"] = [NATIVE_ADVERTISER]
    result = Router.from_destinations(parse_destinations(data)).route(engage())
    assert [o.target.destination for o in accepted(result)] == ["first"]
    assert [(o.destination, o.code) for o in result.refusals] == [("second", "advertiser_not_allowed")]
