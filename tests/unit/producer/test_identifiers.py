"""Identifiers are normalised and hashed exactly as specified; raw values never leave."""

from __future__ import annotations

import hashlib
import random

import pytest

from producer.identifiers import (
    InvalidIdentifier,
    _e164_slow,
    _nanp_fast_path,
    advertising_id_type,
    e164,
    hash_advertising_id,
    hash_email,
    normalize_email,
    phone_hasher,
)
from worker.operations import AAID_SHA256, IDFA_SHA256


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


DIGEST = "584c4423c421df49955759498a71495aba49b8780eb9387dff333b6f0982c777"


# ------------------------------------------------------------------------------------------------ email


def test_email_spec_examples() -> None:
    assert (
        hash_email("testing@testing.com")
        == "584c4423c421df49955759498a71495aba49b8780eb9387dff333b6f0982c777"
    )
    assert normalize_email("Test.User+tag@Testing.com") == "testuser@testing.com"
    assert (
        hash_email("Test.User+tag@Testing.com")
        == "2458778dc6906a947a016ee3bef93b57099bb130945b8f717f7d8794beb69bca"
    )


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("  Person@Example.COM \n", "person@example.com"),  # trim + lowercase
        ("first.last@mail.example.co.uk", "firstlast@mail.example.co.uk"),  # domain keeps its dots
        ("a+b+c@example.com", "a@example.com"),  # from the first '+' up to the '@'
        ("a.b+x.y@example.com", "ab@example.com"),
        ("plain@example.com", "plain@example.com"),
        ("no-at-sign.here", "no-at-sign.here"),  # nothing to split: only trimmed and lowercased
    ],
)
def test_email_normalisation(raw: str, normalized: str) -> None:
    assert normalize_email(raw) == normalized
    assert hash_email(raw) == sha(normalized)


@pytest.mark.parametrize("blank", [None, "", "   ", "\t\n"])
def test_blank_email_is_missing(blank: str | None) -> None:
    assert hash_email(blank) is None


@pytest.mark.parametrize("value", [12345, True, {"email": "x@y.z"}, ["x@y.z"]])
def test_non_string_email_is_unusable(value: object) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        hash_email(value)
    assert err.value.kind == "email"


# ------------------------------------------------------------------------------------------ pre-hashed


@pytest.mark.parametrize("given", [DIGEST, DIGEST.upper(), f"  {DIGEST.upper()} "])
def test_a_digest_is_lowercased_and_never_hashed_again(given: str) -> None:
    assert hash_email(given) == DIGEST
    assert hash_advertising_id(given) == DIGEST
    assert phone_hasher("e164")(given) == DIGEST
    assert phone_hasher("as_is")(given) == DIGEST


@pytest.mark.parametrize("almost", [DIGEST[:-1], DIGEST + "a", DIGEST[:-1] + "g"])
def test_not_quite_a_digest_is_hashed(almost: str) -> None:
    assert hash_advertising_id(almost) == sha(almost)


# ------------------------------------------------------------------------------------------------ phone


def test_phone_as_is_reproduces_segment() -> None:
    hasher = phone_hasher("as_is")
    assert hasher("1234567890") == "c775e7b757ede630cd0aa1113bd102661ab38829ca52a6422ab782862f268646"
    # exactly as given: no trimming, no normalisation
    assert hasher(" (123) 456-7890") == sha(" (123) 456-7890")
    assert hasher(1234567890) == "c775e7b757ede630cd0aa1113bd102661ab38829ca52a6422ab782862f268646"
    assert hasher("   ") is None


@pytest.mark.parametrize(
    "raw",
    [
        "+14155550123",
        "+1 415 555 0123",
        "+1 (415) 555-0123",
        "(415) 555-0123",
        "415-555-0123",
        "415.555.0123",
        "1-415-555-0123",
        "14155550123",
        " 4155550123 ",
        4155550123,
        14155550123.0,
    ],
)
def test_us_phone_formats_normalise_to_one_e164(raw: object) -> None:
    assert phone_hasher("e164", "US")(raw) == sha("+14155550123")


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("+44 (0)20 7946 0958", "US", "+442079460958"),
        ("06 1234 5678", "IT", "+390612345678"),  # Italy keeps its leading zero
        ("030 901820", "DE", "+4930901820"),
        ("+1 416 555 0199", "GB", "+14165550199"),
    ],
)
def test_international_phones(raw: str, country: str, expected: str) -> None:
    assert e164(raw, country) == expected
    assert phone_hasher("e164", country)(raw) == sha(expected)


@pytest.mark.parametrize("raw", ["abc", "12345", "+1 000", "phone: none"])
def test_unreadable_phone_is_unusable_and_the_error_does_not_echo_it(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        phone_hasher("e164", "US")(raw)
    assert err.value.kind == "phone"
    assert raw not in str(err.value)
    assert "US" in str(err.value)


@pytest.mark.parametrize("value", [True, {"number": "4155550123"}, ["4155550123"], 4155550123.5])
def test_phone_of_another_type_is_unusable(value: object) -> None:
    with pytest.raises(InvalidIdentifier):
        phone_hasher("e164")(value)


@pytest.mark.parametrize("blank", [None, "", "  "])
def test_blank_phone_is_missing(blank: str | None) -> None:
    assert phone_hasher("e164")(blank) is None
    assert phone_hasher("as_is")(blank) is None


def test_unknown_default_country_is_refused() -> None:
    with pytest.raises(ValueError, match="XX"):
        phone_hasher("e164", "XX")


def test_nanp_fast_path_agrees_with_phonenumbers() -> None:
    """The string-only fast path must give exactly what phonenumbers gives, in every format it accepts."""
    rng = random.Random(20261126)
    forms = [
        "+1{s}{a}{s}{e}{s}{n}",
        "+1 ({a}) {e}-{n}",
        "1{s}{a}{s}{e}{s}{n}",
        "({a}) {e}-{n}",
        "{a}{s}{e}{s}{n}",
    ]
    taken = 0
    for _ in range(3000):
        area = f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}"
        exchange = f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}"
        text = rng.choice(forms).format(
            a=area, e=exchange, n=f"{rng.randint(0, 9999):04d}", s=rng.choice(["", " ", "-", "."])
        )
        fast = _nanp_fast_path(text, default_is_nanp=True)
        assert fast is not None
        taken += 1
        assert fast == _e164_slow(text, "US"), text
    assert taken == 3000
    # Outside the +1 country, and for numbers the fast path does not know, it steps aside.
    assert _nanp_fast_path("4155550123", default_is_nanp=False) is None
    assert _nanp_fast_path("+44 20 7946 0958", default_is_nanp=True) is None
    assert _nanp_fast_path("+1 115 555 0123", default_is_nanp=True) is None  # area codes never start with 1


# -------------------------------------------------------------------------------------- advertising id


def test_advertising_id_is_trimmed_lowercased_and_hashed() -> None:
    idfa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
    assert hash_advertising_id(f"  {idfa} ") == sha(idfa.lower())
    assert hash_advertising_id("   ") is None
    with pytest.raises(InvalidIdentifier):
        hash_advertising_id(42)


@pytest.mark.parametrize(
    ("mode", "device_type", "expected"),
    [
        ("idfa", "android", IDFA_SHA256),  # Segment always says IDFA
        ("idfa", "ios", IDFA_SHA256),
        ("auto", "android", AAID_SHA256),
        ("auto", "Android", AAID_SHA256),
        ("auto", "ios", IDFA_SHA256),
        ("auto", None, IDFA_SHA256),
        ("auto", "web", IDFA_SHA256),
    ],
)
def test_advertising_id_type(mode: str, device_type: str | None, expected: str) -> None:
    assert advertising_id_type(mode, device_type) == expected  # type: ignore[arg-type]
