"""`hashing: segment`: identifiers hashed exactly as Segment's TikTok Audiences destination hashes them, so
removes reach users that Segment added. Known digests come from Segment's own tests of that destination."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from core.destinations import ConfigError, parse_destinations
from producer.identifiers import (
    InvalidIdentifier,
    hash_advertising_id,
    hash_advertising_id_as_segment,
    hash_email,
    hash_email_as_segment,
    phone_hasher,
)
from producer.routing import Router
from worker.keys import Target
from worker.operations import IDFA_SHA256, Operation

# Segment's addToAudience test: these three identifiers and the digests its request carries.
SEGMENT_EMAIL = ("testing@testing.com", "584c4423c421df49955759498a71495aba49b8780eb9387dff333b6f0982c777")
SEGMENT_PHONE = ("1234567890", "c775e7b757ede630cd0aa1113bd102661ab38829ca52a6422ab782862f268646")
SEGMENT_ADID = ("4242", "0315b4020af3eccab7706679580ac87a710d82970733b8719e70af9b57e7b9e6")
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
IDFA_SEGMENT = "2afcf919a0c1953d177fcb412ea65138b44b4a42dda7d322225811767c0c530c"  # as given
IDFA_LOWERED = "31b806b4deec8c4cb1ffb18b9ab4ee1fa82a2b30e1f47902f04d03f5db023376"  # our default


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("raw", "segment", "normalized"),
    [
        (SEGMENT_EMAIL[0], SEGMENT_EMAIL[1], SEGMENT_EMAIL[1]),
        ("Test.User+tag@Testing.com", sha("testuser@testing.com"), sha("testuser@testing.com")),
        (" testing@testing.com", sha(" testing@testing.com"), SEGMENT_EMAIL[1]),  # Segment does not trim
        ("a+b@c+d@x.com", sha("a@x.com"), sha("a@x.com")),  # "+" up to the last "@"
        ("a.b@c.d@x.com", sha("ab@cd@x.com"), sha("ab@cd@x.com")),  # dots before the last "@"
        ("no-at.sign+x", sha("no-at.sign+x"), sha("no-at.sign+x")),
        (SEGMENT_EMAIL[1].upper(), SEGMENT_EMAIL[1], SEGMENT_EMAIL[1]),  # already a digest
        ("", None, None),
        ("   ", None, None),
        (None, None, None),
    ],
)
def test_email_digests(raw: Any, segment: str | None, normalized: str | None) -> None:
    assert hash_email_as_segment(raw) == segment
    assert hash_email(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "segment", "normalized"),
    [
        (SEGMENT_ADID[0], SEGMENT_ADID[1], SEGMENT_ADID[1]),
        (IDFA, IDFA_SEGMENT, IDFA_LOWERED),  # Segment keeps the case
        (IDFA.lower(), IDFA_LOWERED, IDFA_LOWERED),
        (f" {IDFA} ", sha(f" {IDFA} "), IDFA_LOWERED),  # and the spaces
        (IDFA_SEGMENT.upper(), IDFA_SEGMENT, IDFA_SEGMENT),  # a digest passes (lower-cased for TikTok)
        ("  ", None, None),
        (None, None, None),
    ],
)
def test_advertising_id_digests(raw: Any, segment: str | None, normalized: str | None) -> None:
    assert hash_advertising_id_as_segment(raw) == segment
    assert hash_advertising_id(raw) == normalized


@pytest.mark.parametrize(
    ("raw", "segment"),
    [
        (SEGMENT_PHONE[0], SEGMENT_PHONE[1]),
        ("+1 (123) 456-7890", sha("+1 (123) 456-7890")),  # as given: no E.164
        (" 1234567890", sha(" 1234567890")),  # no trimming
        (1234567890, SEGMENT_PHONE[1]),
    ],
)
def test_phone_digests_are_of_the_value_as_given(raw: Any, segment: str) -> None:
    assert phone_hasher("as_is")(raw) == segment


def test_non_strings_are_still_refused() -> None:
    with pytest.raises(InvalidIdentifier):
        hash_email_as_segment(5)
    with pytest.raises(InvalidIdentifier):
        hash_advertising_id_as_segment(["x"])


# ----------------------------------------------------------------------------------- the destination switch

ADVERTISER = "123"
AUDIENCE = "12345"


def router(hashing: str | None, **mapping: Any) -> Router:
    dest: dict[str, Any] = {
        "id": "tiktok-main",
        "access_token_env": "TIKTOK_ACCESS_TOKEN",
        "advertiser_ids": [ADVERTISER],
        "mappings": [{"action": "addToAudience", **mapping}],
    }
    if hashing is not None:
        dest["hashing"] = hashing
    return Router.from_destinations(parse_destinations({"destinations": [dest]}))


def segment_test_event(adid: str = SEGMENT_ADID[0]) -> dict[str, Any]:
    """The event of Segment's addToAudience test."""
    return {
        "type": "track",
        "event": "Audience Entered",
        "messageId": "m-1",
        "properties": {},
        "context": {
            "device": {"advertisingId": adid},
            "traits": {"email": SEGMENT_EMAIL[0], "phone": SEGMENT_PHONE[0]},
            "personas": {
                "audience_settings": {"advertiserId": ADVERTISER},
                "external_audience_id": AUDIENCE,
            },
        },
    }


def test_a_segment_hashing_destination_sends_segments_digests() -> None:
    result = router("segment").route(segment_test_event())
    assert result.rejection is None
    assert result.operations == [
        Operation(
            Target("tiktok-main", ADVERTISER, AUDIENCE),
            "add",
            SEGMENT_EMAIL[1],
            SEGMENT_PHONE[1],
            SEGMENT_ADID[1],
            IDFA_SHA256,
        )
    ]


def test_by_default_phones_and_advertising_ids_hash_differently_than_under_segment() -> None:
    (ours,) = router(None).route(segment_test_event(IDFA)).operations
    (theirs,) = router("segment").route(segment_test_event(IDFA)).operations
    assert ours.email == theirs.email == SEGMENT_EMAIL[1]
    assert theirs.phone == SEGMENT_PHONE[1] and ours.phone == sha("+11234567890")
    assert theirs.advertising_id == IDFA_SEGMENT and ours.advertising_id == IDFA_LOWERED


def test_a_mappings_own_phone_normalization_wins() -> None:
    (operation,) = router("segment", phone_normalization="e164").route(segment_test_event()).operations
    assert operation.phone == sha("+11234567890")


def test_hashing_takes_only_known_modes() -> None:
    with pytest.raises(ConfigError, match="hashing"):
        router("sha256")
