"""Reading durations and points in time from the command line (``--since 4h``, ``--interval 2``)."""

from __future__ import annotations

import argparse
import datetime as dt
import re

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"cannot read duration {text!r}: use e.g. 90s, 30m, 4h, 2d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_moment(text: str, now: float) -> float:
    """A point in time: a duration ago (``4h``, ``90m``), or an ISO 8601 time (UTC unless it says otherwise)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: use a duration ago (4h, 90m, 2d) or an ISO 8601 time "
                         "(2026-01-31T12:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def positive_seconds(text: str) -> float:
    """An argparse type: seconds above 0, at most an hour."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} must be above 0 and at most 3600 seconds")
    return value
