"""Routing: an event and a destinations file in, operations (or one clear rejection) out."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest

from core.destinations import parse_destinations
from producer.routing import NO_IDENTIFIER, AudienceCreate, Router, RouteResult
from worker.keys import Target
from worker.operations import AAID_SHA256, IDFA_SHA256, Operation

ADVERTISER = "7000000000000000001"
OTHER_ADVERTISER = "7000000000000000002"
NATIVE_ADVERTISER = "7000000000000000003"
AUDIENCE = "1234345"
EMAIL = "Test.User+tag@Testing.com"
EMAIL_SHA = "2458778dc6906a947a016ee3bef93b57099bb130945b8f717f7d8794beb69bca"
PHONE = "(415) 555-0123"
PHONE_SHA = hashlib.sha256(b"+14155550123").hexdigest()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def router(*mappings: Any, native: dict[str, Any] | None = None, dest_id: str = "tiktok-main") -> Router:
    return Router.from_destinations(
        parse_destinations({"destinations": [dest(*mappings, native=native, dest_id=dest_id)]})
    )


def dest(
    *mappings: Any, native: dict[str, Any] | None = None, dest_id: str = "tiktok-main"
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": dest_id,
        "access_token_env": "TIKTOK_ACCESS_TOKEN",
        "advertiser_ids": [ADVERTISER, OTHER_ADVERTISER, NATIVE_ADVERTISER],
        "mappings": [m if isinstance(m, dict) else {"action": m} for m in mappings],
    }
    if native is not None:
        data["native"] = native
    return data


def engage(
    event: str = "Audience Entered",
    *,
    member: Any = True,
    traits: dict[str, Any] | None = None,
    personas: dict[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """An Engage audience track call, as Segment sends it to an audience destination."""
    return {
        "type": "track",
        "event": event,
        "userId": "user-1",
        "messageId": "msg-1",
        "properties": {"audience_key": "vip", "vip": member},
        "context": {
            "traits": {"email": EMAIL} if traits is None else traits,
            "personas": {
                "computation_key": "vip",
                "computation_class": "audience",
                "external_audience_id": AUDIENCE,
                "audience_settings": {"advertiserId": ADVERTISER},
            }
            if personas is None
            else personas,
        },
        **top,
    }


TARGET = Target("tiktok-main", ADVERTISER, AUDIENCE)


def op(
    action: str = "add",
    email: str = EMAIL_SHA,
    phone: str = "",
    adid: str = "",
    adid_type: str = "",
    target: Target = TARGET,
) -> Operation:
    return Operation(target, action, email, phone, adid, adid_type)  # type: ignore[arg-type]


def accepted(result: RouteResult) -> list[Operation]:
    assert result.rejection is None, result.rejection
    assert result.rejection_code is None
    return result.operations


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


# ------------------------------------------------------------------------------------------- identifiers


def test_phone_only_user_is_accepted() -> None:
    result = router("addToAudience").route(engage(traits={"phone": PHONE}))
    assert accepted(result) == [op(email="", phone=PHONE_SHA)]


def test_identifiers_fall_back_to_properties() -> None:
    event = engage(traits={})
    event["properties"].update(email=EMAIL, phone=PHONE)
    assert accepted(router("addToAudience").route(event)) == [op(phone=PHONE_SHA)]


def test_all_three_identifiers() -> None:
    event = engage(traits={"email": EMAIL, "phone": PHONE})
    event["context"]["device"] = {"advertisingId": "AD-ID", "type": "android"}
    expected = op(phone=PHONE_SHA, adid=sha("ad-id"), adid_type=IDFA_SHA256)
    assert accepted(router("addToAudience").route(event)) == [expected]


@pytest.mark.parametrize(
    ("device", "adid_type"), [("android", AAID_SHA256), ("ios", IDFA_SHA256), (None, IDFA_SHA256)]
)
def test_advertising_id_type_auto(device: str | None, adid_type: str) -> None:
    event = engage(traits={})
    event["context"]["device"] = {"advertisingId": "ad-id", "type": device}
    r = router({"action": "addToAudience", "advertising_id_type": "auto"})
    assert accepted(r.route(event)) == [op(email="", adid=sha("ad-id"), adid_type=adid_type)]


def test_no_identifier_rejection_is_segments_message_exactly() -> None:
    result = router("addToAudience").route(engage(traits={"email": "   "}))
    assert result.operations == []
    assert result.rejection == f"mapping 1 (addToAudience): {NO_IDENTIFIER}"
    assert (
        NO_IDENTIFIER
        == "At least one enabled identifier (Email, Phone, or Advertising ID) must have a value."
    )
    assert result.rejection_code == "no_identifier"
    assert (result.rejected_destination, result.rejected_mapping) == ("tiktok-main", 1)


def test_a_disabled_identifier_does_not_count() -> None:
    r = router({"action": "addToAudience", "fields": {"send_email": False}})
    result = r.route(engage())
    assert result.rejection_code == "no_identifier"


def test_invalid_phone_is_dropped_and_counted_when_another_identifier_carries_the_event() -> None:
    result = router("addToAudience", "syncAudience").route(
        engage(traits={"email": EMAIL, "phone": "not a phone"})
    )
    assert accepted(result) == [op()]
    assert result.dropped_identifiers == {"invalid_phone": 1}  # once per event, not per mapping


def test_invalid_phone_alone_rejects_without_echoing_it() -> None:
    result = router("addToAudience").route(engage(traits={"phone": "555-01"}))
    assert result.operations == []
    assert result.rejection_code == "invalid_identifier"
    assert result.rejection is not None
    assert NO_IDENTIFIER in result.rejection
    assert "phone is not a valid phone number (default country US)" in result.rejection
    assert "555-01" not in result.rejection


def test_phone_as_is_matches_segment() -> None:
    r = router({"action": "addToAudience", "fields": {"phone_normalization": "as_is", "send_email": False}})
    result = r.route(engage(traits={"email": EMAIL, "phone": "1234567890"}))
    assert accepted(result) == [
        op(email="", phone="c775e7b757ede630cd0aa1113bd102661ab38829ca52a6422ab782862f268646")
    ]


def test_default_phone_country() -> None:
    r = Router.from_destinations(
        parse_destinations({"destinations": [dest("addToAudience")]}), default_phone_country="GB"
    )
    result = r.route(engage(traits={"phone": "020 7946 0958"}))
    assert accepted(result) == [op(email="", phone=sha("+442079460958"))]


def test_already_hashed_email_is_passed_through_lowercased() -> None:
    digest = sha("someone@example.com")
    assert accepted(router("addToAudience").route(engage(traits={"email": digest.upper()}))) == [
        op(email=digest)
    ]


def test_custom_email_field() -> None:
    r = router({"action": "addToAudience", "fields": {"email": {"@path": "$.properties.contact_email"}}})
    event = engage(traits={"email": "ignored@example.com"})
    event["properties"]["contact_email"] = EMAIL
    assert accepted(r.route(event)) == [op()]


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


# ------------------------------------------------------------------------------------------- integrations


@pytest.mark.parametrize("integrations", [
    {"TikTok Audiences": False},
    {"All": False},
    {"All": False, "Google Ads": True},
])
def test_integrations_turning_the_destination_off_skip_it(integrations: dict[str, Any]) -> None:
    result = router("addToAudience").route(engage(integrations=integrations))
    assert result.operations == [] and result.rejection is None
    assert result.opted_out and result.matched_mappings == 0


@pytest.mark.parametrize("integrations", [
    {"All": False, "TikTok Audiences": True},
    {"All": False, "TikTok Audiences": {"some": "option"}},
    {"Google Ads": False},
    {"All": True},
    {},
])
def test_integrations_leaving_the_destination_on_keep_it(integrations: dict[str, Any]) -> None:
    result = router("addToAudience").route(engage(integrations=integrations))
    assert accepted(result) == [op()] and not result.opted_out


def test_the_integration_name_is_configurable_per_destination() -> None:
    data = {"destinations": [dest("addToAudience", dest_id="first"), dest("addToAudience", dest_id="second")]}
    data["destinations"][1]["integration_name"] = "TikTok (EU)"
    r = Router.from_destinations(parse_destinations(data))
    result = r.route(engage(integrations={"TikTok (EU)": False}))
    assert [o.target.destination for o in result.operations] == ["first"]
    assert result.opted_out
    result = r.route(engage(integrations={"All": False, "TikTok (EU)": True}))
    assert [o.target.destination for o in result.operations] == ["second"]


# ---------------------------------------------------------------------------------------------- event time


def test_operations_carry_the_event_time_and_message_id() -> None:
    r = router("addToAudience", {"action": "addUser", "fields": {"selected_advertiser_id": ADVERTISER,
                                                                 "audience_id": "777"}})
    result = r.route(engage(), 1_796_614_446_471, "msg-1")
    assert [(o.event_ms, o.message_id) for o in accepted(result)] == [(1_796_614_446_471, "msg-1")] * 2
    assert result.operations[0].pack()[5:] == [1_796_614_446_471, "msg-1"]


# ---------------------------------------------------------------------------------------------- identify


def test_identify_reads_top_level_traits_as_segment_libraries_send_them() -> None:
    identify = {"type": "identify", "userId": "u1", "traits": {"email": EMAIL, "phone": PHONE}}
    r = router({"action": "addUser", "subscribe": 'type = "identify"',
                "fields": {"selected_advertiser_id": ADVERTISER, "audience_id": AUDIENCE}})
    assert accepted(r.route(identify)) == [op(phone=PHONE_SHA)]


def test_context_traits_win_over_top_level_traits() -> None:
    identify = {"type": "identify", "userId": "u1", "traits": {"email": "other@example.com"},
                "context": {"traits": {"email": EMAIL}}}
    r = router({"action": "addUser", "subscribe": 'type = "identify"',
                "fields": {"selected_advertiser_id": ADVERTISER, "audience_id": AUDIENCE}})
    assert accepted(r.route(identify)) == [op()]


@pytest.mark.parametrize("member, action", [(True, "add"), (False, "delete")])
def test_sync_audience_reads_identify_membership_from_context_traits(member: bool, action: str) -> None:
    # RudderStack's library puts identify traits in context.traits only.
    identify = {"type": "identify", "userId": "u1",
                "context": {"traits": {"email": EMAIL, "vip": member},
                            "personas": {"computation_key": "vip", "external_audience_id": AUDIENCE,
                                         "audience_settings": {"advertiserId": ADVERTISER}}}}
    r = router({"action": "syncAudience", "subscribe": 'type = "identify"'})
    assert accepted(r.route(identify)) == [op(action)]


def test_every_destination_gets_its_operations() -> None:
    data = {"destinations": [dest("addToAudience", dest_id="first"), dest("addToAudience", dest_id="second")]}
    result = Router.from_destinations(parse_destinations(data)).route(engage())
    assert [o.target.destination for o in accepted(result)] == ["first", "second"]


def test_disabled_mappings_do_not_run() -> None:
    r = router({"action": "addToAudience", "enabled": False}, "removeFromAudience")
    assert r.route(engage()) == RouteResult(matched_mappings=0)
    assert len(r.mappings) == 2


def test_route_does_not_change_the_event() -> None:
    event = engage(traits={"email": EMAIL, "phone": PHONE})
    before = copy.deepcopy(event)
    router("addToAudience", "syncAudience").route(event)
    assert event == before


def test_targets_are_reused_across_events() -> None:
    r = router("addToAudience")
    first = accepted(r.route(engage()))[0].target
    assert accepted(r.route(engage()))[0].target is first


# ------------------------------------------------------------------------------------- into a sink


def test_route_into_appends_packed_operations_and_says_only_how_many_mappings_matched() -> None:
    sink: list[Any] = [("earlier", TARGET, ["a"])]
    outcome = router("addToAudience", "syncAudience").route_into(engage(), sink, 1_796_614_446_471, "msg-1")

    assert outcome == 2  # nothing else to say: no result object
    assert sink[1:] == [(TARGET.name, TARGET, ["a", EMAIL_SHA, "", "", "", 1_796_614_446_471, "msg-1"])]  # once


def test_route_into_says_more_when_a_mapping_refuses_and_keeps_the_others_operations() -> None:
    sink: list[Any] = []
    outcome = router("addToAudience", "syncAudience").route_into(engage(member="yes"), sink)

    assert isinstance(outcome, RouteResult)
    assert outcome.operations == [] and [name for name, _, _ in sink] == [TARGET.name]
    assert [o.code for o in outcome.outcomes] == [None, "invalid_membership"]


def test_a_routing_bug_leaves_nothing_of_the_event_in_the_sink(monkeypatch: pytest.MonkeyPatch) -> None:
    import producer.routing

    def broken(event: Any, personas: Any) -> str:
        raise KeyError("a bug")

    monkeypatch.setattr(producer.routing, "membership", broken)
    sink: list[Any] = [("earlier", TARGET, ["a"])]
    with pytest.raises(KeyError):  # addToAudience made its operation before syncAudience hit the bug
        router("addToAudience", "syncAudience").route_into(engage(), sink)
    assert sink == [("earlier", TARGET, ["a"])]


def test_dropped_identifiers_count_once_per_way_of_reading_them_however_many_mappings_share_it() -> None:
    # Mappings 1 and 3 read identifiers the same way, mapping 2 another way (no advertising id), between them.
    other = {"action": "addToAudience", "fields": {"external_audience_id": "555", "send_advertising_id": False}}
    result = router("addToAudience", other, "addToAudience").route(engage(traits={"email": EMAIL, "phone": "555-01"}))

    assert len(accepted(result)) == 2  # mapping 3 repeats mapping 1's operation: sent once
    assert result.dropped_identifiers == {"invalid_phone": 2}


# ------------------------------------------------------------------------------------------ no raw PII


@pytest.mark.parametrize(
    ("mappings", "event"),
    [
        (["addToAudience"], engage(traits={"email": EMAIL}, personas={"computation_key": "vip"})),
        (["addToAudience"], engage(traits={"email": EMAIL, "phone": PHONE}, personas={})),
        (["syncAudience"], engage(traits={"email": EMAIL, "phone": PHONE}, member="maybe")),
        (["addToAudience"], engage(traits={"phone": "212-55"})),
        (["addToAudience"], engage(traits={"email": ["person@example.com"], "phone": "12"})),
    ],
)
def test_rejections_never_contain_identifiers(mappings: list[str], event: dict[str, Any]) -> None:
    result = router(*mappings).route(event)
    assert result.rejection is not None
    for raw in (EMAIL, EMAIL.lower(), "person@example.com", "415", "555", "212", "testuser"):
        assert raw not in result.rejection
