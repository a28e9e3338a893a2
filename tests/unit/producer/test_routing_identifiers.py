"""Routing's identifiers: which fields are read, how they are normalised and hashed, what is dropped and counted."""

from __future__ import annotations

import pytest

from core.destinations import parse_destinations
from producer.routing import NO_IDENTIFIER, Router
from tests.support.routing import EMAIL, PHONE, PHONE_SHA, accepted, dest, engage, op, router, sha
from worker.operations import AAID_SHA256, IDFA_SHA256

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
