"""Mappings compile once; every configuration error names the destination, the mapping and the problem."""

from __future__ import annotations

from typing import Any

import pytest

from core.destinations import ConfigError, Destination, parse_destinations
from producer.directives import compile_value
from producer.mapping_actions import ACTIONS, DEFAULT_FIELDS, read_default_identifiers
from producer.mappings import compile_destination
from producer.routing import Router

ADVERTISER = "7000000000000000001"


def destination(*mappings: Any, **extra: Any) -> Destination:
    data: dict[str, Any] = {
        "id": "tiktok-main",
        "access_token_env": "TIKTOK_ACCESS_TOKEN",
        "advertiser_ids": [ADVERTISER, "7000000000000000002"],
        "mappings": list(mappings),
        **extra,
    }
    return Destination.model_validate(data)


def config_error(*mappings: Any) -> str:
    with pytest.raises(ConfigError) as err:
        compile_destination(destination(*mappings))
    return str(err.value)


LEGACY = {"selected_advertiser_id": ADVERTISER, "audience_id": "1234345"}


# ------------------------------------------------------------------------------------------------ actions


def test_the_six_actions_with_segment_titles_and_default_triggers() -> None:
    assert {slug: (a.title, a.default_trigger) for slug, a in ACTIONS.items()} == {
        "addToAudience": ("Add to Audience", 'event = "Audience Entered"'),
        "removeFromAudience": ("Remove from Audience", 'event = "Audience Exited"'),
        "syncAudience": ("Sync Audience", 'type = "track"'),
        "addUser": ("Add Users (Legacy)", 'event = "Audience Entered"'),
        "removeUser": ("Remove Users (Legacy)", 'event = "Audience Exited"'),
        "createAudience": ("Create Audience (Legacy)", 'event = "Create Audience"'),
    }


def test_defaults_compile() -> None:
    compiled = compile_destination(
        destination(
            {"action": "addToAudience"},
            {"action": "removeFromAudience"},
            {"action": "syncAudience"},
            {"action": "addUser", "fields": LEGACY},
            {"action": "removeUser", "fields": LEGACY},
            {
                "action": "createAudience",
                "fields": {"selected_advertiser_id": ADVERTISER, "custom_audience_name": "x"},
            },
        )
    )
    assert [(m.index, m.action, m.label) for m in compiled] == [
        (1, "addToAudience", "mapping 1 (addToAudience)"),
        (2, "removeFromAudience", "mapping 2 (removeFromAudience)"),
        (3, "syncAudience", "mapping 3 (syncAudience)"),
        (4, "addUser", "mapping 4 (addUser)"),
        (5, "removeUser", "mapping 5 (removeUser)"),
        (6, "createAudience", "mapping 6 (createAudience)"),
    ]
    add = compiled[0]
    assert add.trigger_text == 'event = "Audience Entered"'
    assert (add.phone_normalization, add.advertising_id_type, add.enabled) == ("e164", "idfa", True)
    assert add.read_identifiers is read_default_identifiers


def test_subscribe_name_enabled_and_options() -> None:
    (m,) = compile_destination(
        destination(
            {
                "action": "addUser",
                "name": "VIP adds",
                "enabled": False,
                "subscribe": 'event = "Audience Entered" and properties.audience_key = "vip"',
                "advertising_id_type": "auto",
                "fields": {**LEGACY, "phone_normalization": "as_is", "send_phone": True},
            }
        )
    )
    assert (m.name, m.enabled, m.phone_normalization, m.advertising_id_type) == (
        "VIP adds",
        False,
        "as_is",
        "auto",
    )
    assert m.trigger({"event": "Audience Entered", "properties": {"audience_key": "vip"}})
    assert not m.trigger({"event": "Audience Entered", "properties": {"audience_key": "other"}})


def test_yaml_numbers_for_ids_are_read_as_text() -> None:
    (m,) = compile_destination(
        destination(
            {
                "action": "addUser",
                "fields": {"selected_advertiser_id": int(ADVERTISER), "audience_id": 1234345},
            }
        )
    )
    assert m.audience_id is not None and m.audience_id({}) == "1234345"


def test_pasted_segment_fields_are_accepted() -> None:
    compile_destination(
        destination(
            {
                "action": "syncAudience",
                "fields": {
                    "enable_batching": True,
                    "batch_keys": ["send_email"],
                    "event_name": {"@path": "$.event"},
                },
            },
            {
                "action": "createAudience",
                "fields": {
                    "selected_advertiser_id": ADVERTISER,
                    "custom_audience_name": "x",
                    "id_type": "EMAIL_SHA256",
                },
            },
        )
    )


def test_default_reader_matches_the_default_directives() -> None:
    email, phone, adid = (compile_value(DEFAULT_FIELDS[f]) for f in ("email", "phone", "advertising_id"))
    events: list[dict[str, Any]] = [
        {},
        {"context": "not an object", "properties": ["nor", "this"]},
        {"context": {"traits": {"email": "t@x.io", "phone": "1"}, "device": {"advertisingId": "ad"}}},
        {"context": {"traits": {"email": None}}, "properties": {"email": "p@x.io", "phone": "2"}},
        {"context": {"traits": {"email": ""}}, "properties": {"email": "p@x.io"}},  # "" exists: no fallback
        {"context": {"traits": "x", "device": None}, "properties": {"phone": 415}},
    ]
    for event in events:
        assert read_default_identifiers(event) == (email(event), phone(event), adid(event)), event


def test_mappings_with_the_same_identifier_fields_share_an_identity_key() -> None:
    a, b, c, d = compile_destination(
        destination(
            {"action": "addToAudience"},
            {"action": "syncAudience"},
            {"action": "removeFromAudience", "fields": {"send_phone": False}},
            {"action": "addUser", "fields": {**LEGACY, "email": {"@path": "$.properties.contact"}}},
        )
    )
    assert a.identity_key == b.identity_key
    assert a.identity_key != c.identity_key
    assert a.identity_key != d.identity_key


# -------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        ({"action": "addToAudiences"}, "mapping 1: unknown action 'addToAudiences' (one of addToAudience,"),
        ({"fields": {}}, "mapping 1: needs 'action'"),
        (
            {"action": "addToAudience", "subscribe": 'event = "Audience Entered" and'},
            "mapping 1 (addToAudience): subscribe 'event = \"Audience Entered\" and' "
            "does not parse at position 31:",
        ),
        ({"action": "addToAudience", "subscribe": 'event == "x"'}, "at position 7: expected '='"),
        (
            {
                "action": "syncAudience",
                "fields": {"send_email": False, "send_phone": False, "send_advertising_id": False},
            },
            "mapping 1 (syncAudience): send_email, send_phone and send_advertising_id are all false",
        ),
        (
            {"action": "addUser", "fields": {"audience_id": "1"}},
            "mapping 1 (addUser): needs field 'selected_advertiser_id'",
        ),
        (
            {"action": "removeUser", "fields": {"selected_advertiser_id": ADVERTISER}},
            "(removeUser): needs field 'audience_id'",
        ),
        (
            {"action": "addUser", "fields": {**LEGACY, "audience_id": ""}},
            "(addUser): needs field 'audience_id'",
        ),
        (
            {"action": "createAudience", "fields": {"custom_audience_name": "VIP"}},
            "(createAudience): needs field 'selected_advertiser_id'",
        ),
        (
            {"action": "createAudience", "fields": {"selected_advertiser_id": ADVERTISER}},
            "(createAudience): needs field 'custom_audience_name'",
        ),
        (
            {"action": "addUser", "fields": {**LEGACY, "selected_advertiser_id": "7999"}},
            "(addUser): selected_advertiser_id 7999 is not one of the destination's advertiser_ids",
        ),
        (
            {"action": "addUser", "fields": {**LEGACY, "audience_id": "has space"}},
            "is not a TikTok audience id",
        ),
        (
            {"action": "addToAudience", "fields": {"emial": {"@path": "$.properties.email"}}},
            "(addToAudience): unknown field 'emial' for addToAudience (its fields:",
        ),
        (
            {"action": "addToAudience", "fields": {"audience_id": "1"}},
            "unknown field 'audience_id' for addToAudience",
        ),
        ({"action": "createAudience", "fields": {"email": "x"}}, "unknown field 'email' for createAudience"),
        ({"action": "addToAudience", "trigger": 'type = "track"'}, "(addToAudience): unknown key 'trigger'"),
        (
            {"action": "addToAudience", "phone_normalization": "e.164"},
            "phone_normalization must be e164 or as_is",
        ),
        (
            {"action": "addToAudience", "advertising_id_type": "gaid"},
            "advertising_id_type must be idfa or auto",
        ),
        (
            {
                "action": "addToAudience",
                "phone_normalization": "e164",
                "fields": {"phone_normalization": "as_is"},
            },
            "phone_normalization is set twice",
        ),
        ({"action": "addToAudience", "fields": {"send_email": "yes"}}, "send_email must be true or false"),
        ({"action": "addToAudience", "enabled": "no"}, "'enabled' must be true or false"),
        ({"action": "addToAudience", "subscribe": 5}, "'subscribe' must be an FQL string"),
        ({"action": "addToAudience", "fields": ["email"]}, "'fields' must be an object"),
        (
            {"action": "addToAudience", "fields": {"email": {"@arrayPaths": ["$.a"]}}},
            "(addToAudience): field 'email': unknown directive @arrayPaths (supported: @path, @if",
        ),
        (
            {"action": "addToAudience", "fields": {"email": {"@path": "$.a..b"}}},
            "field 'email': @path '$.a..b': empty key",
        ),
    ],
)
def test_config_errors_name_destination_mapping_and_problem(mapping: Any, problem: str) -> None:
    message = config_error(mapping)
    assert message.startswith("destination 'tiktok-main', mapping 1")
    assert problem in message


def test_errors_name_the_right_mapping_and_its_name() -> None:
    message = config_error(
        {"action": "addToAudience"},
        {"action": "removeFromAudience"},
        {"action": "addUser", "name": "VIP adds", "fields": {"audience_id": "1"}},
    )
    assert message.startswith("destination 'tiktok-main', mapping 3 'VIP adds' (addUser): needs field")


def test_disabled_mappings_are_still_checked() -> None:
    assert "unknown field 'x'" in config_error(
        {"action": "addToAudience", "enabled": False, "fields": {"x": 1}}
    )


def test_a_directive_advertiser_is_checked_per_event_not_at_load() -> None:
    compile_destination(
        destination(
            {
                "action": "addUser",
                "fields": {"selected_advertiser_id": {"@path": "$.properties.adv"}, "audience_id": "1"},
            }
        )
    )


def test_router_reports_the_failing_destination() -> None:
    data = {
        "destinations": [
            {
                "id": "ok",
                "access_token_env": "T",
                "advertiser_ids": [ADVERTISER],
                "mappings": [{"action": "addToAudience"}],
            },
            {
                "id": "broken",
                "access_token_env": "T",
                "advertiser_ids": [ADVERTISER],
                "mappings": [{"action": "nope"}],
            },
        ]
    }
    with pytest.raises(ConfigError, match=r"^destination 'broken', mapping 1: unknown action 'nope'"):
        Router.from_destinations(parse_destinations(data))


def test_unknown_default_phone_country() -> None:
    with pytest.raises(
        ConfigError, match="mapping 1 \\(addToAudience\\): unknown default phone country 'ZZ'"
    ):
        compile_destination(destination({"action": "addToAudience"}), default_phone_country="ZZ")
