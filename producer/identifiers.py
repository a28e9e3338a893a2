"""Identifier normalisation and hashing (emails, phones, advertising ids). Raw values stop here: only digests
leave.

Each function takes the raw field value and returns a lowercase SHA-256 hex digest, ``None`` when the value
counts as missing (``None``, empty or whitespace-only), or raises :class:`InvalidIdentifier` when a value is
present but unusable. Error messages never contain the value.

A value that is already a digest (exactly 64 hex characters, any case, after trimming) is lowercased and
passed through, never hashed twice.

Phones: E.164 through ``phonenumbers`` (``parse`` + ``is_possible_number``), which costs ~25-30 µs a number.
Most Engage phones are North American, so :func:`phone_hasher` first tries a fast path that handles
``+1 NXX NXX XXXX`` written with the usual separators (and, when the default country is a +1 country, the same
number without ``+1``/``1``) by string manipulation alone; a test checks it against ``phonenumbers`` on
generated numbers. Everything else takes the ``phonenumbers`` route. There is deliberately no cache of raw
phone numbers: it would keep PII in process memory beyond the event that carried it, and each phone appears in
few events, so it would rarely hit.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

import phonenumbers

from producer.describe import kind_of

try:
    # CPython's own SHA-256 (the same digests): for ~30-byte identifiers it costs ~0.43 µs against ~0.75 µs for
    # hashlib's OpenSSL one, whose every new hash object first looks the algorithm up.
    from _sha256 import sha256  # Python 3.11
except ImportError:  # pragma: no cover - other Pythons
    try:
        from _sha2 import sha256  # Python 3.12+
    except ImportError:
        from hashlib import sha256

from worker.operations import AAID_SHA256, IDFA_SHA256

PhoneNormalization = Literal["e164", "as_is"]
# A destination's hashing: ours ("normalized": trimmed, E.164 phones, lower-cased advertising ids) or exactly
# Segment's TikTok Audiences destination's ("segment"), so digests match audiences Segment built.
Hashing = Literal["normalized", "segment"]
AdvertisingIdMode = Literal["idfa", "auto"]

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# +1 NXX NXX XXXX (NANP: area code and exchange never start with 0 or 1).
_NANP_E164 = re.compile(r"\+1[2-9][0-9]{2}[2-9][0-9]{6}")
_NANP_NATIONAL = re.compile(r"1?([2-9][0-9]{2}[2-9][0-9]{6})")
# Separators phonenumbers ignores that people commonly type; anything else goes the slow way.
_SEPARATORS = str.maketrans("", "", " -().\t")


class InvalidIdentifier(ValueError):
    """A present but unusable identifier. ``kind`` is email, phone or advertising_id; no raw value inside."""

    def __init__(self, kind: str, reason: str) -> None:
        self.kind = kind
        self.reason = reason
        super().__init__(f"{kind} {reason}")


def is_digest(value: str) -> bool:
    """Exactly 64 hex characters: an identifier someone already hashed."""
    return len(value) == 64 and _HEX64.fullmatch(value) is not None


def normalize_email(value: str) -> str:
    """Trim, lowercase, drop ``+tag`` from the local part, drop dots from the local part (domain keeps its).

    The local part ends at the last ``@`` (Segment's regexes agree); without an ``@`` only trim and lowercase.
    """
    return _normalize_lowered(value.strip().lower())


def _normalize_lowered(text: str) -> str:
    local, at, domain = text.rpartition("@")
    if not at or ("+" not in local and "." not in local):
        return text
    if "+" in local:
        local = local[: local.index("+")]
    return local.replace(".", "") + "@" + domain


def hash_email(value: Any) -> str | None:
    if value.__class__ is not str:
        if value is None:
            return None
        raise InvalidIdentifier("email", f"must be a string, not {kind_of(value)}")
    text = value.strip().lower()  # one pass each; this runs for nearly every event
    if not text:
        return None
    if len(text) == 64 and _HEX64.fullmatch(text):
        return text
    return sha256(_normalize_lowered(text).encode()).hexdigest()


def hash_advertising_id(value: Any) -> str | None:
    if value is None:
        return None
    if value.__class__ is not str:
        raise InvalidIdentifier("advertising_id", f"must be a string, not {kind_of(value)}")
    text = value.strip()
    if not text:
        return None
    if len(text) == 64 and _HEX64.fullmatch(text):
        return text.lower()
    return sha256(text.lower().encode()).hexdigest()


# Segment's email rule, as its regexes write it: from the first "+" to the last "@", and every "." before the
# last "@", go; then lower case. Nothing is trimmed.
_SEGMENT_PLUS_TAG = re.compile(r"\+.*@")
_SEGMENT_LOCAL_DOTS = re.compile(r"\.(?=.*@)")


def hash_email_as_segment(value: Any) -> str | None:
    """Segment's email digest: its normalisation (no trimming), then SHA-256; a 64-hex value passes through.

    Segment sends a value that merely *contains* 64 hex characters unhashed; here it is hashed, since raw
    values never leave intake.
    """
    if value.__class__ is not str:
        if value is None:
            return None
        raise InvalidIdentifier("email", f"must be a string, not {kind_of(value)}")
    if not value.strip():
        return None
    text = _SEGMENT_LOCAL_DOTS.sub("", _SEGMENT_PLUS_TAG.sub("@", value, count=1)).lower()
    if len(text) == 64 and _HEX64.fullmatch(text):
        return text
    return sha256(text.encode()).hexdigest()


def hash_advertising_id_as_segment(value: Any) -> str | None:
    """Segment's advertising id digest: SHA-256 of the value exactly as given (case and spaces kept)."""
    if value is None:
        return None
    if value.__class__ is not str:
        raise InvalidIdentifier("advertising_id", f"must be a string, not {kind_of(value)}")
    if not value.strip():
        return None
    if len(value) == 64 and _HEX64.fullmatch(value):
        return value.lower()  # TikTok takes lower-case digests only
    return sha256(value.encode()).hexdigest()


def email_hasher(hashing: Hashing) -> Callable[[Any], str | None]:
    return hash_email_as_segment if hashing == "segment" else hash_email


def advertising_id_hasher(hashing: Hashing) -> Callable[[Any], str | None]:
    return hash_advertising_id_as_segment if hashing == "segment" else hash_advertising_id


def advertising_id_type(mode: AdvertisingIdMode, device_type: Any) -> str:
    """IDFA_SHA256 unless ``mode`` is ``auto`` and the device is android (AAID_SHA256)."""
    if mode == "auto" and isinstance(device_type, str) and device_type.strip().lower() == "android":
        return AAID_SHA256
    return IDFA_SHA256


def _phone_text(value: Any) -> str:
    """A phone field's text: strings as given, whole numbers (JSON often carries phones so) as digits."""
    cls = value.__class__
    if cls is str:
        return value
    if cls is int:
        return str(value)
    if cls is float and value.is_integer():
        return str(int(value))
    raise InvalidIdentifier("phone", f"must be a string or a whole number, not {kind_of(value)}")


def e164(text: str, country: str) -> str | None:
    """``text`` as E.164 (``+`` country code, digits), reading it in ``country`` when it has no country code.

    ``None`` when it cannot be read as a phone number.
    """
    nanp = _nanp_fast_path(text, country_code_for(country) == 1)
    if nanp is not None:
        return nanp
    return _e164_slow(text, country)


def _nanp_fast_path(text: str, default_is_nanp: bool) -> str | None:
    compact = text.translate(_SEPARATORS)
    if compact.startswith("+"):
        return compact if _NANP_E164.fullmatch(compact) else None
    if default_is_nanp:
        m = _NANP_NATIONAL.fullmatch(compact)
        if m:
            return "+1" + m.group(1)
    return None


def _e164_slow(text: str, country: str) -> str | None:
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def country_code_for(country: str) -> int:
    """The calling code of a region (``US`` -> 1); 0 for a region ``phonenumbers`` does not know."""
    return int(phonenumbers.country_code_for_region(country.upper()))


def phone_hasher(normalization: PhoneNormalization, country: str = "US") -> Callable[[Any], str | None]:
    """One mapping's phone hasher: ``hasher(raw) -> digest | None``; raises InvalidIdentifier."""
    country = country.upper()
    code = country_code_for(country)
    if code == 0:
        raise ValueError(f"unknown default phone country {country!r} (use an ISO 3166 code such as US)")
    default_is_nanp = code == 1

    if normalization == "as_is":

        def hash_as_is(value: Any) -> str | None:
            if value is None:
                return None
            text = _phone_text(value)
            stripped = text.strip()
            if not stripped:
                return None
            if len(stripped) == 64 and _HEX64.fullmatch(stripped):
                return stripped.lower()
            # Exactly as given (no trimming): what Segment hashes, so digests match its destination's.
            return sha256(text.encode()).hexdigest()

        return hash_as_is

    def hash_e164(value: Any) -> str | None:
        if value is None:
            return None
        text = _phone_text(value).strip()
        if not text:
            return None
        if len(text) == 64 and _HEX64.fullmatch(text):
            return text.lower()
        normalized = _nanp_fast_path(text, default_is_nanp) or _e164_slow(text, country)
        if normalized is None:
            raise InvalidIdentifier("phone", f"is not a valid phone number (default country {country})")
        return sha256(normalized.encode()).hexdigest()

    return hash_e164
