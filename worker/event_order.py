"""Which of several operations on one user is the latest: event time decides, not arrival.

Every operation carries its event's time (``event_ms``, epoch milliseconds; 0 when unknown, in which case the
time the service accepted it stands in) and its event's message id. Operations are ordered by *(event time,
message id)*; the message id only breaks ties between events of the same millisecond. The tie-break compares a
short digest of the message id rather than the id itself, so the delivered-membership record
(:mod:`worker.membership`) can keep it in a few fixed-width bytes per user and order it exactly as this module
does: both sides use :func:`order_key`.

Two operations with the same time and message id are the same event sent twice. Should they still differ in
action (possible only for operations that carry neither an event time nor a message id), the one that arrived
later wins, as it did before event times existed.
"""

from __future__ import annotations

import hashlib
from typing import TypeAlias

from worker.operations import PackedOperation

# Fleet-wide counters in the keys.METRICS hash: operations dropped because a newer event on the same user and
# audience was already known, and event times the intake clamped because they lay too far in the future.
METRIC_SUPERSEDED = "superseded"
METRIC_CLAMPED = "clamped"

# An event time is kept as 13 decimal digits (epoch milliseconds up to the year 2286), so that the record's
# order key compares as a string; the message id's tie-break as 8 hex digits.
MAX_EVENT_MS = 9_999_999_999_999
TIE_WIDTH = 8
NO_MESSAGE_ID_TIE = "0" * TIE_WIDTH
ORDER_KEY_WIDTH = 13 + TIE_WIDTH

AcceptedMs: TypeAlias = list[int] | int  # one acceptance time for all operations, or one each


def tie_break(message_id: str) -> str:
    """The message id's tie-break: a fixed-width digest (an absent id sorts first)."""
    if not message_id:
        return NO_MESSAGE_ID_TIE
    return hashlib.blake2b(message_id.encode(), digest_size=TIE_WIDTH // 2).hexdigest()


def order_key(event_ms: int, message_id: str) -> str:
    """The sortable text of (event time, message id): a later event has a greater key."""
    return f"{min(max(event_ms, 0), MAX_EVENT_MS):013d}{tie_break(message_id)}"


def event_times(operations: list[PackedOperation], accepted_ms: AcceptedMs) -> list[int]:
    """Each operation's event time, its acceptance time where the event's own is unknown (0).

    ``accepted_ms`` is one acceptance time for all, or one per operation."""
    if isinstance(accepted_ms, int):
        return [op[5] or accepted_ms for op in operations]
    if len(accepted_ms) != len(operations):
        raise ValueError(f"{len(accepted_ms)} acceptance times for {len(operations)} operations")
    return [op[5] or accepted for op, accepted in zip(operations, accepted_ms, strict=True)]


def stamp(operations: list[PackedOperation], accepted_ms: AcceptedMs) -> list[PackedOperation]:
    """The operations with every unknown event time (0) replaced by its acceptance time.

    A drain stamps what it cuts from the stream, so that every later step (the batch's stored rows, the record
    of what was delivered, a replay) orders the operation by the same time."""
    if all(op[5] for op in operations):
        return list(operations)
    times = event_times(operations, accepted_ms)
    return [op if op[5] == ms else op._replace(event_ms=ms) for op, ms in zip(operations, times, strict=True)]


def latest_per_user(operations: list[PackedOperation], accepted_ms: AcceptedMs) -> list[PackedOperation]:
    """Per user (the same identifiers make the same user), only the operation with the latest (event time,
    message id), in the order the kept operations had. A full tie keeps the one that came later."""
    # The identity of PackedOperation.row_key as a tuple: no string to build per operation.
    row_keys = [(email, phone, adid_type, adid) for _, email, phone, adid, adid_type, *_ in operations]
    last = {key: index for index, key in enumerate(row_keys)}  # later indexes overwrite earlier ones
    if len(last) == len(operations):
        return list(operations)  # no user twice: the usual batch
    times = event_times(operations, accepted_ms)
    winner: dict[tuple[str, str, str, str], int] = {}
    for index, key in enumerate(row_keys):
        best = winner.get(key)
        # ``index`` came later than ``best``: it wins unless it is older (a full tie keeps the later arrival).
        if best is None or times[index] > times[best] or (
                times[index] == times[best]
                and tie_break(operations[index][6]) >= tie_break(operations[best][6])):
            winner[key] = index
    kept = sorted(winner.values())
    return [operations[index] for index in kept]
