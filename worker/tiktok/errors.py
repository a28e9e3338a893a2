"""What can go wrong when calling TikTok, as types the retry policy dispatches on.

Exception hierarchy::

    TikTokError                  every failed call; code, message, request_id, http_status
    ├── ThrottledError       40100, 40016, 40133, 40132, 61000, HTTP 429 -> the fleet backs off for that
    │                        token, never dead
    ├── TransientError       50000, 50002, other 5xxxx, 60001 (maintenance), HTTP 5xx, timeouts, dropped
    │                        connections, unreadable answers -> retried with backoff inside the retry window
    ├── AuthError            40001, 40102, 40103, 40104, 40105, 40106, 40107, 40113, 40114, 40130 -> the
    │                        destination pauses until it is re-authorised
    └── PermanentError       40002, every other non-zero code (unknown ones too), other HTTP 4xx -> dead

The codes are those of TikTok's documentation and of its official Python SDK
(``tiktok-business-api-sdk-official``, ``NumericErrorCodes``): 40132 REQUEST_FREQUENCY_LIMITED and 61000
TOO_MANY_REQUESTS_BL are throttles, 40102 ACCESS_TOKEN_EXPIRE ... 40130 SCOPE_NOT_AUTHORIZED are token or
permission problems, 60001 MAINTENANCE passes.

TikTok answers most errors with HTTP 200 and a non-zero ``code``, so the class comes from the body's code
first, and from the HTTP status only where the transport itself speaks (429, 5xx) or the body says nothing.

No error text ever holds the access token (or an app secret): :func:`classify` blanks any secret it is given
out of TikTok's message, because that message is stored in the ledger and shown to operators.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from core.redaction import redact as redact_secrets

SUCCESS = 0
THROTTLE_CODES = frozenset({40100, 40016, 40133, 40132, 61000})
AUTH_CODES = frozenset({40001, 40102, 40103, 40104, 40105, 40106, 40107, 40113, 40114, 40130})
TRANSIENT_CODES = frozenset({60001})
# TikTok's message is stored in the ledger and logged: a hostile or broken answer must not fill either.
MAX_MESSAGE = 1024


class TikTokError(Exception):
    """A call to TikTok that did not succeed."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        request_id: str = "",
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.http_status = http_status

    def __str__(self) -> str:
        parts = [f"code {self.code}"] if self.code is not None else []
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.request_id:
            parts.append(f"request_id {self.request_id}")
        return f"{self.message} ({', '.join(parts)})" if parts else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"request_id={self.request_id!r}, http_status={self.http_status!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Celery and multiprocessing pickle errors; keyword-only arguments defeat Exception's default.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[TikTokError], message: str, state: dict[str, Any]) -> TikTokError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ThrottledError(TikTokError):
    """TikTok asks us to slow down; ``retry_after`` is its Retry-After hint in seconds, when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        request_id: str = "",
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, request_id=request_id, http_status=http_status)
        self.retry_after = retry_after


class TransientError(TikTokError):
    """The call may succeed if tried again later."""


class AuthError(TikTokError):
    """The token is invalid, expired or lacks a permission: no call with it succeeds until re-authorised."""


class PermanentError(TikTokError):
    """TikTok refused the request itself: sending it again cannot help."""


def classify(
    http_status: int,
    body: bytes | str | Mapping[str, Any] | None,
    *,
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
) -> TikTokError | None:
    """The error a TikTok answer stands for, or None when it is a success (HTTP 2xx and ``code == 0``).

    ``body`` is the raw answer or its already parsed JSON object. ``secrets`` are blanked out of the message.
    """
    parsed = body if isinstance(body, Mapping) else parse_body(body)
    code = _code_of(parsed)
    message = redact(_message_of(parsed, http_status), secrets)
    request_id = str(parsed.get("request_id") or "") if parsed is not None else ""
    fields: dict[str, Any] = {"code": code, "request_id": request_id, "http_status": http_status}

    # The transport's own signals first: a 429 or a 5xx from a gateway may carry any body, or none.
    if http_status == 429:
        return ThrottledError(message, retry_after=retry_after, **fields)
    if http_status >= 500:
        return TransientError(message, **fields)

    if code is not None and code != SUCCESS:
        if code in THROTTLE_CODES:
            return ThrottledError(message, retry_after=retry_after, **fields)
        if code in AUTH_CODES:
            return AuthError(message, **fields)
        if 50000 <= code <= 59999 or code in TRANSIENT_CODES:
            return TransientError(message, **fields)
        return PermanentError(message, **fields)

    if 400 <= http_status < 500:
        return PermanentError(message, **fields)
    if not 200 <= http_status < 300:
        # 1xx/3xx from TikTok means something (a proxy, a redirect loop) sits in between: worth another try.
        return TransientError(message, **fields)
    if code is None:
        # A 2xx whose body is not TikTok's envelope (truncated, a gateway's HTML): we cannot tell it worked.
        return TransientError(message, **fields)
    return None


def parse_body(body: bytes | str | None) -> dict[str, Any] | None:
    """TikTok's JSON envelope as a dict, or None when the body is empty, not JSON, or not an object."""
    if not body:
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _code_of(parsed: Mapping[str, Any] | None) -> int | None:
    if parsed is None:
        return None
    code = parsed.get("code")
    if isinstance(code, bool):
        return None
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        return int(code)
    return None


def _message_of(parsed: Mapping[str, Any] | None, http_status: int) -> str:
    if parsed is None:
        return f"unreadable answer from TikTok (HTTP {http_status})"
    message = parsed.get("message")
    if isinstance(message, str) and message:
        return truncate_message(message)
    return f"TikTok answered without a message (HTTP {http_status})"


def truncate_message(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret in it replaced by a marker: also upper- or lower-cased, percent-
    or JSON-encoded copies (core.redaction)."""
    return redact_secrets(text, secrets)
