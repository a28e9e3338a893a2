"""Blank out secrets (write keys, webhook secret, access tokens, app secrets, auth codes) wherever text could
carry one: TikTok's error messages, exception texts, every log line.

A secret leaks in more shapes than its exact copy: a server may echo it upper-cased, a URL or form body carries
it percent-encoded (either hex case), a JSON log line escapes it, and a Basic ``Authorization`` header carries
``base64("<key>:")``. Every one of those shapes is matched, case-insensitively.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, quote_plus

import orjson

REDACTED = "[redacted]"
# Values shorter than this are matched only as they are, and the log pipeline ignores them altogether (a
# secret that short is no secret, and blanking it would blank ordinary words).
MIN_SECRET_LENGTH = 6


def _shapes(secret: str) -> set[str]:
    shapes = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret),
              orjson.dumps(secret).decode()[1:-1]}
    for suffix in (":", ""):
        encoded = base64.b64encode(f"{secret}{suffix}".encode()).decode()
        shapes |= {encoded, encoded.rstrip("=")}  # padded (longest, matched first) or not
    return {shape for shape in shapes if len(shape) >= MIN_SECRET_LENGTH}



@lru_cache(maxsize=64)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    shapes: set[str] = set()
    for secret in secrets:
        # A short value is blanked as it is (its encodings could match ordinary text).
        shapes |= _shapes(secret) if len(secret) >= MIN_SECRET_LENGTH else {secret}
    if not shapes:
        return None
    # Longest first, so a shape that contains another is blanked whole.
    return re.compile("|".join(re.escape(s) for s in sorted(shapes, key=len, reverse=True)), re.IGNORECASE)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every copy of every secret in ``secrets`` (in any of the shapes above) replaced."""
    pattern = _pattern(frozenset(s for s in secrets if s))
    return pattern.sub(REDACTED, text) if pattern is not None else text


class Redactor:
    """A growing set of secrets, applied to text (the log pipeline holds one for the process)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = frozenset(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)

    def add(self, *secrets: str) -> None:
        self._secrets = self._secrets | {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}

    def __call__(self, text: str) -> str:
        return redact(text, self._secrets) if self._secrets else text
