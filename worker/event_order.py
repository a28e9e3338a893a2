"""Which of several operations on one user is the latest: event time decides, not arrival.

Every operation carries its event's time (``event_ms``, epoch milliseconds; 0 when unknown, in which case the
time the service accepted it stands in) and its event's message id. Operations are ordered by *(event time,
message id)*; the message id only breaks ties between events of the same millisecond. The tie-break compares a
short checksum of the message id rather than the id itself, so the delivered-membership record
(:mod:`worker.membership`) can keep it in a few fixed-width bytes per user and order it exactly as this module
does: both sides use :func:`order_key`.

Two operations with the same time and message id are the same event sent twice. Should they still differ in
action (possible only for operations that carry neither an event time nor a message id), the one that arrived
later wins, as it did before event times existed.
"""

from __future__ import annotations

import zlib
from itertools import count
from operator import itemgetter
from typing import TypeAlias

from worker.operations import PackedOperation

# Fleet-wide counters in the keys.METRICS hash: operations dropped because a newer event on the same user and
# audience was already known, and event times the intake clamped because they lay too far in the future.
METRIC_SUPERSEDED = "superseded"
METRIC_CLAMPED = "clamped"

# An order key is two fixed-width decimals, so that it compares as a string: the event time (epoch ms, up to the
# year 2286) plus 10**13, 14 digits, then the message id's tie-break plus 10**10, 11 digits. The offsets give the
# fixed width without zero padding, which costs a format spec per operation.
MAX_EVENT_MS = 10**13 - 1
EVENT_MS_OFFSET = 10**13
TIE_OFFSET = 10**10
NO_MESSAGE_ID_TIE = str(TIE_OFFSET)
ORDER_KEY_WIDTH = 14 + 11

_IDENTIFIERS = itemgetter(slice(1, 5))  # PackedOperation's email, phone, advertising id and its type

AcceptedMs: TypeAlias = list[int] | int  # one acceptance time for all operations, or one each


def tie_break(message_id: str) -> str:
    """The message id's tie-break: a fixed-width checksum (CRC-32: computed in C, cheap enough to take for
    every operation of a drain; an absent id gives 0 and sorts first)."""
    return str(zlib.crc32(message_id.encode()) + TIE_OFFSET)


def order_key(event_ms: int, message_id: str) -> str:
    """The sortable text of (event time, message id): a later event has a greater key."""
    return f"{min(max(event_ms, 0), MAX_EVENT_MS) + EVENT_MS_OFFSET}{tie_break(message_id)}"


def event_times(operations: list[PackedOperation], accepted_ms: AcceptedMs) -> list[int]:
    """Each operation's event time, its acceptance time where the event's own is unknown (0), within the
    range an order key holds.

    ``accepted_ms`` is one acceptance time for all, or one per operation."""
    if isinstance(accepted_ms, int):
        times = [op[5] or accepted_ms for op in operations]
    elif len(accepted_ms) != len(operations):
        raise ValueError(f"{len(accepted_ms)} acceptance times for {len(operations)} operations")
    else:
        times = [op[5] or accepted for op, accepted in zip(operations, accepted_ms, strict=True)]
    if times and (min(times) < 0 or max(times) > MAX_EVENT_MS):  # checked in C; clamped only when needed
        times = [min(max(ms, 0), MAX_EVENT_MS) for ms in times]
    return times


def stamp(operations: list[PackedOperation], accepted_ms: AcceptedMs) -> list[PackedOperation]:
    """The operations with every unknown event time (0) replaced by its acceptance time.

    A drain stamps what it cuts from the stream, so that every later step (the batch's stored rows, the record
    of what was delivered, a replay) orders the operation by the same time."""
    if all(op[5] for op in operations):
        return list(operations)
    times = event_times(operations, accepted_ms)
    # Tuples built in C, as operations.unpack_all does: NamedTuple._replace is a Python call per operation.
    new, cls = tuple.__new__, PackedOperation
    return [new(cls, (action, email, phone, adid, adid_type, ms, message_id))
            for (action, email, phone, adid, adid_type, _, message_id), ms in zip(operations, times, strict=True)]


def latest_per_user(operations: list[PackedOperation], accepted_ms: AcceptedMs) -> list[PackedOperation]:
    """Per user (the same identifiers make the same user), only the operation with the latest (event time,
    message id), in the order the kept operations had. A full tie keeps the one that came later."""
    # A user's identity is its operation's identifiers (email, phone, advertising id and its type), sliced
    # out as a tuple in C: no string to build per operation (a drain runs this over 10,000).
    row_keys = list(map(_IDENTIFIERS, operations))
    last = {key: index for index, key in enumerate(row_keys)}  # later indexes overwrite earlier ones
    if len(last) == len(operations):
        return list(operations)  # no user twice: the usual batch
    winner: dict[tuple[str, ...], int] = {}
    latest: dict[tuple[str, ...], int] = {}  # the winner's event time
    for index, key, ms in zip(count(), row_keys, event_times(operations, accepted_ms), strict=False):
        best = latest.get(key)
        # ``index`` came later than the winner so far: it wins unless it is older (a full tie: it wins).
        if best is None or ms > best or (
                ms == best and tie_break(operations[index][6]) >= tie_break(operations[winner[key]][6])):
            winner[key] = index
            latest[key] = ms
    return [operations[index] for index in sorted(winner.values())]
