"""When an event happened, as Segment decides it, in epoch milliseconds.

The worker lets the latest event per (audience, user) win, so every operation carries its event's time:

1. the event's ``timestamp``, when it has one;
2. else its ``originalTimestamp`` corrected for the sending device's clock: ``received - (sentAt -
   originalTimestamp)`` (Segment's clock-skew rule), with the event's own ``sentAt`` or, for a ``/v1/batch``
   body, the batch's; without any ``sentAt`` the ``originalTimestamp`` as given;
3. else the time the intake received it.

A time further in the future than the allowed skew (``TTA_MAX_EVENT_SKEW``) is a broken clock, not a plan:
it is clamped to the time received (and counted), so it cannot pin a membership for days.

A timestamp that is not ISO-8601 is refused (``invalid_timestamp``, naming the field) rather than replaced by
the time received: a sender whose timestamps cannot be read would otherwise have its events ordered by
arrival without anyone noticing, which is exactly what event time is there to prevent.

``datetime.fromisoformat`` (Python 3.11 reads every ISO-8601 form Segment's libraries write, ``Z`` included)
reads the times, ~0.7 µs each; the libraries' usual ``...T03:30:00.250Z`` takes a cached shortcut (~0.4 µs).
A string without a zone is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

MESSAGE_ID_MAX = 100  # characters of a messageId kept as the tie-breaker


class EventTimeError(ValueError):
    """A timestamp field that cannot be read. ``field`` names it; the text never repeats its value."""

    code = "invalid_timestamp"

    def __init__(self, field: str) -> None:
        self.field = field
        self.reason = f"'{field}' is not an ISO-8601 date-time (e.g. 2026-12-07T03:30:00.000Z)"
        super().__init__(self.reason)


def parse_ms(text: str, field: str) -> int:
    """An ISO-8601 date-time as epoch milliseconds; a string without a zone is UTC."""
    # The form every Segment library writes, "2026-12-07T03:30:00.250Z": the seconds part is looked up in a
    # small cache (events of one request mostly share their second), the milliseconds added: half the cost
    # of datetime's own conversion.
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        millis = _MILLIS.get(text[20:23])
        if millis is not None:
            head = text[:19]
            seconds = _SECONDS.get(head)
            if seconds is None:
                seconds = _whole_seconds(head, field)
            return seconds * 1000 + millis
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EventTimeError(field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Exact integer arithmetic, and sub-millisecond digits dropped as Segment's libraries drop them (a float
    # of epoch seconds would turn .250 into 249.99999 ms).
    return (moment - _EPOCH) // _MILLISECOND


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_SECONDS: dict[str, int] = {}  # "2026-12-07T03:30:00" -> epoch seconds
_MILLIS = {f"{n:03d}": n for n in range(1000)}  # "250" -> 250: one look-up checks and converts
_SECONDS_KEPT = 4096


def _whole_seconds(head: str, field: str) -> int:
    try:
        moment = datetime.fromisoformat(head)
    except ValueError:
        raise EventTimeError(field) from None
    if moment.tzinfo is not None or moment.microsecond:  # a zone or fraction in 19 characters: not this form
        raise EventTimeError(field)
    seconds = int(moment.replace(tzinfo=UTC).timestamp())
    if len(_SECONDS) >= _SECONDS_KEPT:
        _SECONDS.clear()
    _SECONDS[head] = seconds
    return seconds


def event_ms(event: dict[str, Any], received_ms: int, batch_sent_at: str | None = None) -> int:
    """The event's time in epoch ms, before clamping (see :func:`clamp`). Raises :class:`EventTimeError` for
    a timestamp field that is present but unreadable."""
    get = event.get
    stamp = get("timestamp")
    if stamp.__class__ is str and stamp:
        # parse_ms's shortcut, inline: this runs for nearly every event.
        seconds = _SECONDS.get(stamp[:19]) if len(stamp) == 24 and stamp[23] == "Z" and stamp[19] == "." else None
        millis = _MILLIS.get(stamp[20:23]) if seconds is not None else None
        ms = seconds * 1000 + millis if seconds is not None and millis is not None else parse_ms(stamp, "timestamp")
    else:
        original = get("originalTimestamp")
        if original.__class__ is str and original:
            ms = parse_ms(original, "originalTimestamp")
            sent = get("sentAt")
            field = "sentAt"
            if not (sent.__class__ is str and sent):
                sent, field = batch_sent_at, "the batch's sentAt"
            if sent:
                ms = received_ms - (parse_ms(sent, field) - ms)
        else:
            # No time of its own: 0 says "unknown", and the worker orders it by its acceptance time (the time
            # received) and, within one millisecond, by arrival (worker.event_order), not by message id.
            return 0
    return ms


def clamp(ms: int, received_ms: int, max_skew_ms: int) -> tuple[int, bool]:
    """``ms``, or the time received when ``ms`` is more than ``max_skew_ms`` ahead of it; and whether it was
    clamped. (The intake's loop makes the same comparison inline.)"""
    if ms - received_ms > max_skew_ms:
        return received_ms, True
    return ms, False


def message_id(event: dict[str, Any]) -> str:
    """The event's ``messageId`` as the tie-breaker between events of one millisecond ("" when none)."""
    mid = event.get("messageId")
    if mid.__class__ is str:
        return mid if len(mid) <= MESSAGE_ID_MAX else mid[:MESSAGE_ID_MAX]
    return ""
