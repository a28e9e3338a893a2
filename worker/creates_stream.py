"""The format of the stream of legacy ``createAudience`` requests (:data:`worker.keys.CREATES`): the intake
appends to it, :mod:`worker.creates` consumes it.

One entry per distinct request (destination, advertiser, name), with one field, ``c``: the JSON object
``{"destination", "advertiser_id", "name"}``. The name is written as the event gave it (trimmed); the consumer
cuts it to TikTok's length. This module is the one place both sides take the format from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

FIELD = "c"
_FIELD_AS_READ = FIELD.encode()  # how redis-py (without decode_responses) names the field of an entry read back


class CreateFields(NamedTuple):
    """What one entry asks for."""

    destination: str
    advertiser_id: str
    name: str


def encode_create(destination: str, advertiser_id: str, name: str) -> dict[str, bytes]:
    """The fields of the entry that asks for audience ``name`` (for ``XADD``)."""
    return {FIELD: orjson.dumps({"destination": destination, "advertiser_id": advertiser_id, "name": name})}


def decode_create(fields: Mapping[Any, Any] | None) -> CreateFields | None:
    """The request an entry's fields (as read back: bytes or str names) hold; None when it is unreadable."""
    fields = fields or {}
    raw = fields.get(_FIELD_AS_READ, fields.get(FIELD))
    try:
        doc = orjson.loads(raw or b"")
        return CreateFields(str(doc["destination"]), str(doc["advertiser_id"]), str(doc["name"]).strip())
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
