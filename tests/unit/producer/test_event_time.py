"""Event time: Segment's timestamp, else originalTimestamp corrected by sentAt, else the time received."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producer.event_time import MESSAGE_ID_MAX, EventTimeError, clamp, message_id
from producer.event_time import event_ms as raw_event_ms

DAY_MS = 86_400_000


def event_ms(event: dict[str, object], received_ms: int, max_skew_ms: int,
             batch_sent_at: str | None = None) -> tuple[int, bool]:
    """The event time as the intake takes it: read, then clamped."""
    return clamp(raw_event_ms(event, received_ms, batch_sent_at), received_ms, max_skew_ms)


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


RECEIVED = ms("2026-12-07T12:00:00.000+00:00")


def test_timestamp_is_the_event_time() -> None:
    event = {"timestamp": "2026-12-07T11:59:58.125Z", "originalTimestamp": "2026-12-07T09:00:00Z",
             "sentAt": "2026-12-07T09:00:01Z"}
    assert event_ms(event, RECEIVED, DAY_MS) == (RECEIVED - 1875, False)


@pytest.mark.parametrize("text, expected", [
    ("2026-12-07T11:00:00Z", RECEIVED - 3_600_000),
    ("2026-12-07T11:00:00.5+00:00", RECEIVED - 3_599_500),
    ("2026-12-07T13:00:00+02:00", RECEIVED - 3_600_000),
    ("2026-12-07T11:00:00", RECEIVED - 3_600_000),  # no zone: UTC
    ("2026-12-07", ms("2026-12-07T00:00:00+00:00")),
    ("2026-12-07T11:00:00.250999+00:00", RECEIVED - 3_599_750),  # sub-milliseconds dropped, as Segment's do
    ("1969-12-31T23:59:59.999Z", -1),
])
def test_iso_8601_forms_libraries_write(text: str, expected: int) -> None:
    assert event_ms({"timestamp": text}, RECEIVED, DAY_MS) == (expected, False)


def test_original_timestamp_is_corrected_by_sent_at_against_the_time_received() -> None:
    # The device's clock is an hour fast; it recorded the event 5 s before it sent it.
    event = {"originalTimestamp": "2026-12-07T13:00:00Z", "sentAt": "2026-12-07T13:00:05Z"}
    assert event_ms(event, RECEIVED, DAY_MS) == (RECEIVED - 5000, False)


def test_the_batch_sent_at_stands_in_for_an_event_without_one() -> None:
    event = {"originalTimestamp": "2026-12-07T13:00:00Z"}
    assert event_ms(event, RECEIVED, DAY_MS, "2026-12-07T13:00:02Z") == (RECEIVED - 2000, False)
    own = {**event, "sentAt": "2026-12-07T13:00:03Z"}
    assert event_ms(own, RECEIVED, DAY_MS, "2026-12-07T13:00:02Z") == (RECEIVED - 3000, False)


def test_original_timestamp_without_any_sent_at_is_taken_as_given() -> None:
    event = {"originalTimestamp": "2026-12-07T11:00:00Z"}
    assert event_ms(event, RECEIVED, DAY_MS) == (RECEIVED - 3_600_000, False)


@pytest.mark.parametrize("event", [{}, {"timestamp": None}, {"timestamp": ""}, {"sentAt": "2026-12-07T11:00:00Z"}])
def test_without_a_time_of_its_own_the_time_is_unknown(event: dict[str, object]) -> None:
    # 0: the worker orders the operation by its acceptance time (the time received) and, within one
    # millisecond, by arrival.
    assert event_ms(event, RECEIVED, DAY_MS) == (0, False)


def test_a_time_too_far_in_the_future_is_clamped_to_the_time_received() -> None:
    assert event_ms({"timestamp": "2026-12-08T12:00:00.001Z"}, RECEIVED, DAY_MS) == (RECEIVED, True)
    assert event_ms({"timestamp": "2026-12-08T12:00:00.000Z"}, RECEIVED, DAY_MS) == (RECEIVED + DAY_MS, False)
    assert event_ms({"timestamp": "2026-12-07T12:00:01Z"}, RECEIVED, 0) == (RECEIVED, True)


def test_a_corrected_time_in_the_future_is_clamped_too() -> None:
    # sentAt before originalTimestamp by two days: the correction lands two days ahead.
    event = {"originalTimestamp": "2026-12-09T12:00:00Z", "sentAt": "2026-12-07T12:00:00Z"}
    assert event_ms(event, RECEIVED, DAY_MS) == (RECEIVED, True)


def test_times_in_the_past_are_kept_however_old() -> None:
    assert event_ms({"timestamp": "2020-01-01T00:00:00Z"}, RECEIVED, DAY_MS) == (ms("2020-01-01T00:00:00+00:00"),
                                                                                False)


@pytest.mark.parametrize("event, field", [
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": "2026-13-01T00:00:00Z"}, "timestamp"),
    ({"originalTimestamp": "soon"}, "originalTimestamp"),
    ({"originalTimestamp": "2026-12-07T11:00:00Z", "sentAt": "now"}, "sentAt"),
])
def test_an_unreadable_timestamp_is_refused_naming_the_field(event: dict[str, object], field: str) -> None:
    with pytest.raises(EventTimeError) as raised:
        event_ms(event, RECEIVED, DAY_MS)
    assert raised.value.field == field and raised.value.code == "invalid_timestamp"
    assert f"'{field}'" in raised.value.reason
    assert str(event[field]) not in raised.value.reason  # never echoes the value


def test_an_unreadable_batch_sent_at_is_named_as_the_batchs() -> None:
    with pytest.raises(EventTimeError, match="the batch's sentAt"):
        event_ms({"originalTimestamp": "2026-12-07T11:00:00Z"}, RECEIVED, DAY_MS, "later")


def test_ties_are_broken_by_the_message_id_capped_in_length() -> None:
    assert message_id({"messageId": "abc"}) == "abc"
    assert message_id({}) == "" and message_id({"messageId": 7}) == ""
    assert message_id({"messageId": "x" * 500}) == "x" * MESSAGE_ID_MAX


def test_a_device_clock_that_agrees_with_its_sent_at_gives_the_time_received() -> None:
    now = datetime.now(UTC).timestamp()
    device = "2020-01-01T00:00:00.000Z"  # any clock: only the difference to sentAt counts
    assert event_ms({"originalTimestamp": device, "sentAt": device}, int(now * 1000), DAY_MS)[0] == int(now * 1000)


@pytest.mark.parametrize("text", [
    "2026-12-07T11:59:58.125Z", "2026-12-31T23:59:59.999Z", "1999-01-01T00:00:00.000Z", "2026-12-07 11:59:58.125Z",
])
def test_the_shortcut_for_the_libraries_usual_form_agrees_with_datetime(text: str) -> None:
    expected = round(datetime.fromisoformat(text).timestamp() * 1000)
    assert event_ms({"timestamp": text}, RECEIVED, 10**15) == (expected, False)
    assert event_ms({"timestamp": text}, RECEIVED, 10**15) == (expected, False)  # again, from the cache


@pytest.mark.parametrize("text", ["2026-12-07T11:59:58.1_5Z", "2026-12-07T11:59:58. 15Z", "2026-12-07T11:5+01:00.125Z",
                                  "2026-12-07T11:59:58.+15Z", "2026-12-07T11:59:58.\uff11\uff12\uff13Z"])
def test_the_shortcut_refuses_what_is_not_iso_8601(text: str) -> None:
    with pytest.raises(EventTimeError):
        event_ms({"timestamp": text}, RECEIVED, DAY_MS)
