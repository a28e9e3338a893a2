"""The event envelope: validate_event accepts what the Segment spec allows, names what it refuses, and agrees
with the SegmentEvent model case by case."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from producer.events import EventError, SegmentEvent, validate_event


def track(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "track",
        "event": "Audience Entered",
        "messageId": "m-1",
        "userId": "user-1",
        "properties": {"audience_key": "vip", "vip": True},
        "context": {"traits": {"email": "person@example.com"}},
        "timestamp": "2026-11-26T10:00:00.000Z",
    }
    for key, value in changes.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


VALID = [
    track(),
    track(userId=..., anonymousId="anon-1"),
    track(userId=123),
    track(properties=None, context=None),  # null counts as absent
    track(someVendorKey={"x": 1}, integrations={"All": True}),  # extra keys are kept
    {"type": "identify", "userId": "u", "traits": {"vip": True}},
    {"type": "page", "anonymousId": "a", "name": "Home"},
    {"type": "screen", "userId": "u", "name": "Home"},
    {"type": "group", "userId": "u", "groupId": "g"},
    {"type": "alias", "userId": "u", "previousId": "p"},
]

INVALID = [
    ("not an object", [track()], "must be a JSON object", "invalid_event"),
    ("no type", track(type=...), "needs 'type'", "invalid_type"),
    ("unknown type", track(type="purchase"), "type must be one of track, identify", "invalid_type"),
    ("type not a string", track(type=["track"]), "type must be one of", "invalid_type"),
    ("track without event", track(event=...), "track event needs 'event'", "missing_event"),
    ("track with empty event", track(event=""), "track event needs 'event'", "missing_event"),
    ("event not a string", track(event=5), "'event' must be a string, not a number", "invalid_field"),
    ("no user", track(userId=...), "needs 'userId' or 'anonymousId'", "missing_identity"),
    ("empty user", track(userId=""), "needs 'userId' or 'anonymousId'", "missing_identity"),
    ("userId a boolean", track(userId=True), "'userId' must be a string or a number", "invalid_field"),
    (
        "properties a list",
        track(properties=[1]),
        "'properties' must be an object, not a list",
        "invalid_field",
    ),
    ("context a string", track(context="x"), "'context' must be an object, not a string", "invalid_field"),
    ("messageId a number", track(messageId=7), "'messageId' must be a string", "invalid_field"),
    ("timestamp a number", track(timestamp=1700000000), "'timestamp' must be a string", "invalid_field"),
    (
        "group without groupId",
        {"type": "group", "userId": "u"},
        "group event needs 'groupId'",
        "missing_group_id",
    ),
    (
        "alias without previousId",
        {"type": "alias", "userId": "u"},
        "needs 'previousId'",
        "missing_previous_id",
    ),
]


@pytest.mark.parametrize("event", VALID)
def test_valid_events_come_back_unchanged(event: dict[str, Any]) -> None:
    before = repr(event)
    assert validate_event(event) is event  # the same dict: routing keeps working on the raw event
    assert repr(event) == before


@pytest.mark.parametrize(("case", "event", "reason", "code"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_events_are_refused_with_a_reason(case: str, event: Any, reason: str, code: str) -> None:
    with pytest.raises(EventError) as err:
        validate_event(event)
    assert reason in err.value.reason
    assert err.value.code == code


def test_reasons_do_not_echo_values() -> None:
    with pytest.raises(EventError) as err:
        validate_event(track(userId=["person@example.com"]))
    assert "person@example.com" not in str(err.value)


@pytest.mark.parametrize("event", VALID)
def test_model_accepts_what_validate_event_accepts(event: dict[str, Any]) -> None:
    SegmentEvent.model_validate(event)


@pytest.mark.parametrize(("case", "event", "reason", "code"), INVALID, ids=[c[0] for c in INVALID])
def test_model_refuses_what_validate_event_refuses(case: str, event: Any, reason: str, code: str) -> None:
    with pytest.raises(ValidationError):
        SegmentEvent.model_validate(event)


def test_model_keeps_extra_keys() -> None:
    model = SegmentEvent.model_validate(track(custom="kept"))
    assert model.model_extra == {"custom": "kept"}
