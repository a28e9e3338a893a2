"""Operations: the unit the producer appends and the worker batches.

An operation adds one user to, or deletes one user from, one target's audience. Identifiers are SHA-256 hex
digests by the time an operation exists; raw values never get this far.

On the wire (inside a Redis stream entry) an operation is packed as a 7-item JSON list
``[action, email, phone, advertising_id, advertising_id_type, event_ms, message_id]`` with ``"a"``/``"d"`` for
the action, ``""`` for a missing identifier, ``"i"``/``"a"``/``""`` for the advertising id's type (IDFA / AAID),
the event's time in epoch milliseconds (``0``: unknown, the entry's acceptance time stands in) and the event's
message id (``""``: none), which breaks ties between events of the same millisecond. Entries written before event
times existed hold 5-item lists; they read back with ``event_ms`` 0 and no message id. Many operations of one
intake request share one entry, so the per-operation cost in Redis is a few bytes, not a round trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import orjson

from worker.keys import Target

Action = Literal["add", "delete"]

EMAIL_SHA256 = "EMAIL_SHA256"
PHONE_SHA256 = "PHONE_SHA256"
IDFA_SHA256 = "IDFA_SHA256"
AAID_SHA256 = "AAID_SHA256"
# TikTok's id_schema order: a request lists the types it uses in this order, and every row has one cell each.
ID_TYPES_IN_ORDER: tuple[str, ...] = (EMAIL_SHA256, PHONE_SHA256, IDFA_SHA256, AAID_SHA256)

# Codes on the wire (public: the queue packs operations in bulk without a method call each).
ACTION_CODE = {"add": "a", "delete": "d"}
ACTION_FROM_CODE: dict[str, Action] = {"a": "add", "d": "delete"}
ADID_TYPE_CODE = {IDFA_SHA256: "i", AAID_SHA256: "a", "": ""}
ADID_TYPE_FROM_CODE = {"i": IDFA_SHA256, "a": AAID_SHA256, "": ""}


def pack_fields(action: str, email: str, phone: str, advertising_id: str, advertising_id_type: str,
                event_ms: int = 0, message_id: str = "") -> list[Any]:
    """The packed form of an operation's fields (see the module docstring)."""
    return [
        ACTION_CODE[action],
        email,
        phone,
        advertising_id,
        ADID_TYPE_CODE[advertising_id_type] if advertising_id else "",
        event_ms,
        message_id,
    ]


@dataclass(frozen=True, slots=True)
class Operation:
    target: Target
    action: Action
    email: str = ""
    phone: str = ""
    advertising_id: str = ""
    advertising_id_type: str = ""  # IDFA_SHA256 or AAID_SHA256 when advertising_id is set
    event_ms: int = 0  # the event's time, epoch milliseconds (0: unknown)
    message_id: str = ""  # the event's message id: breaks ties between events of the same millisecond

    def __post_init__(self) -> None:
        if not (self.email or self.phone or self.advertising_id):
            raise ValueError("an operation needs at least one identifier")
        if self.advertising_id and self.advertising_id_type not in (IDFA_SHA256, AAID_SHA256):
            raise ValueError("an advertising id needs its type (IDFA_SHA256 or AAID_SHA256)")

    def pack(self) -> list[Any]:
        return pack_fields(self.action, self.email, self.phone, self.advertising_id, self.advertising_id_type,
                           self.event_ms, self.message_id)


class PackedOperation(NamedTuple):
    """An operation as the worker reads it back: no target (the stream it came from says that).

    A named tuple rather than a frozen dataclass: a drain unpacks ~10,000 of them per batch, and a tuple is
    built in C (:func:`unpack_all`) where a frozen dataclass runs a Python ``__init__`` with one
    ``object.__setattr__`` per field, several times the cost."""

    action: Action
    email: str
    phone: str
    advertising_id: str
    advertising_id_type: str
    event_ms: int = 0
    message_id: str = ""

    @classmethod
    def unpack(cls, packed: list[Any]) -> PackedOperation:
        return unpack_all([packed])[0]

    def pack(self) -> list[Any]:
        return pack_fields(self.action, self.email, self.phone, self.advertising_id, self.advertising_id_type,
                           self.event_ms, self.message_id)

    @property
    def cells(self) -> dict[str, str]:
        """The identifiers this operation carries, by TikTok id type."""
        out: dict[str, str] = {}
        if self.email:
            out[EMAIL_SHA256] = self.email
        if self.phone:
            out[PHONE_SHA256] = self.phone
        if self.advertising_id:
            out[self.advertising_id_type] = self.advertising_id
        return out

    @property
    def row_key(self) -> str:
        """Identity of the user this operation is about: the same identifiers make the same row."""
        return f"{self.email}|{self.phone}|{self.advertising_id_type}:{self.advertising_id}"


_new_tuple = tuple.__new__


def unpack_all(packed_ops: Iterable[list[Any]]) -> list[PackedOperation]:
    """:meth:`PackedOperation.unpack` for many at once, without a Python call per operation. Takes the 7-item
    form and the older 5-item one (no event time, no message id)."""
    actions, types, cls = ACTION_FROM_CODE, ADID_TYPE_FROM_CODE, PackedOperation
    return [_new_tuple(cls, (actions[p[0]], p[1], p[2], p[3], types[p[4]],
                             p[5] if len(p) > 5 else 0, p[6] if len(p) > 6 else ""))
            for p in packed_ops]


def encode_entry(packed_ops: list[list[Any]]) -> bytes:
    return orjson.dumps(packed_ops)


def encode_operations(operations: Iterable[PackedOperation]) -> bytes:
    """``encode_entry([op.pack() for op in operations])`` without a method call per operation."""
    actions, types = ACTION_CODE, ADID_TYPE_CODE
    return orjson.dumps([[actions[a], email, phone, adid, types[t] if adid else "", ms, mid]
                         for a, email, phone, adid, t, ms, mid in operations])


def decode_entry(data: bytes) -> list[PackedOperation]:
    return unpack_all(orjson.loads(data))
