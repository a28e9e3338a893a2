"""The creates stream's format: what the intake writes is what the consumer reads."""

from __future__ import annotations

import fakeredis

from worker import keys
from worker.creates import CreateRequest
from worker.creates_stream import FIELD, CreateFields, decode_create, encode_create

ADVERTISER = "7000000000000000001"


def test_an_entry_written_reads_back_as_the_same_request() -> None:
    client = fakeredis.FakeRedis()
    client.xadd(keys.CREATES, encode_create("dest", ADVERTISER, "VIP buyers"))
    [(_, fields)] = client.xrange(keys.CREATES)

    assert decode_create(fields) == CreateFields("dest", ADVERTISER, "VIP buyers")
    assert decode_create({FIELD: encode_create("dest", ADVERTISER, "VIP")[FIELD]}) == ("dest", ADVERTISER, "VIP")


def test_unreadable_entries_read_as_none() -> None:
    for fields in (None, {}, {b"c": b"not json"}, {b"c": b'{"destination": "dest"}'}, {b"c": b"[1]"}):
        assert decode_create(fields) is None


def test_the_consumer_cuts_names_to_tiktoks_length() -> None:
    request = CreateRequest.from_entry(encode_create("dest", ADVERTISER, "  " + "n" * 90 + " "))
    assert request is not None and len(request.name) == 70 and request.destination == "dest"
