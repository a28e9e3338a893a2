"""Routing one event as a whole: integrations, event time, identify calls, a sink, no raw PII in answers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from core.destinations import parse_destinations
from producer.routing import Router, RouteResult
from tests.support.routing import (
    ADVERTISER,
    AUDIENCE,
    EMAIL,
    EMAIL_SHA,
    PHONE,
    PHONE_SHA,
    TARGET,
    accepted,
    dest,
    engage,
    op,
    router,
)

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
