"""Who may post events: write keys (Segment's HTTP API convention) and Segment webhook signatures.

- ``Authorization: Basic base64("<write key>:")`` — the key as user name; Segment ignores the password and so
  do we, so clients that send one still work.
- ``Authorization: Bearer <write key>``.
- On ``/v1/webhook`` also ``X-Signature``: the hex HMAC-SHA1 of the raw body keyed with the shared secret of a
  Segment Webhooks destination.

Comparisons are constant-time and run over every configured key, so timing tells nothing about a key.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
from base64 import b64decode
from collections.abc import Sequence

from core.settings import Settings

SIGNATURE_HEADER = "X-Signature"
# Hex HMAC-SHA1. ASCII only: a header may carry any byte, and a non-hex one is simply not a signature.
_SIGNATURE = re.compile(r"[0-9a-fA-F]{40}", re.ASCII)


class Authenticator:
    def __init__(self, write_keys: Sequence[str], webhook_secret: str = "", *, no_auth: bool = False) -> None:
        self._keys = [k.encode() for k in write_keys if k]
        self._secret = webhook_secret.encode()
        self.no_auth = no_auth

    @classmethod
    def from_settings(cls, settings: Settings, *, no_auth: bool = False) -> Authenticator:
        return cls(settings.write_key_list, settings.webhook_secret, no_auth=no_auth)

    @property
    def configured(self) -> bool:
        """Whether anything can authenticate at all (``serve`` refuses to start otherwise)."""
        return bool(self._keys or self._secret)

    def check_key(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries a configured write key."""
        if self.no_auth:
            return True
        key = _key_from_header(authorization)
        if key is None or not self._keys:
            return False
        matched = False
        for candidate in self._keys:
            # No short cut: every key is compared, whether or not an earlier one matched.
            matched |= hmac.compare_digest(key, candidate)
        return matched

    def check_signature(self, body: bytes, signature: str | None) -> bool:
        """Whether ``signature`` is the hex HMAC-SHA1 of ``body`` under the webhook secret."""
        if self.no_auth:
            return True
        if not self.could_be_signature(signature):
            return False
        assert signature is not None
        expected = hmac.new(self._secret, body, hashlib.sha1).hexdigest()
        return hmac.compare_digest(expected.encode(), signature.strip().lower().encode("ascii"))

    def could_be_signature(self, signature: str | None) -> bool:
        """Whether ``signature`` has the form of one (40 hex digits) and a secret is set to check it with:
        anything else is refused before the body is read, let alone hashed."""
        if self.no_auth:
            return True
        return bool(self._secret) and signature is not None and _SIGNATURE.fullmatch(signature.strip()) is not None

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self._secret)


def sign(body: bytes, secret: str) -> str:
    """The ``X-Signature`` Segment sends for ``body`` (for tests and for senders we write ourselves)."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def _key_from_header(authorization: str | None) -> bytes | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        # Header values arrive as str with undecodable bytes as surrogates: those are no key of ours.
        return credentials.encode("utf-8", "replace") if credentials else None
    if scheme == "basic":
        try:
            decoded = b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return None
        user, _, _password = decoded.partition(b":")
        return user or None
    return None
