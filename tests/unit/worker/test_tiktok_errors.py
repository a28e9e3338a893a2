"""TikTok answers are sorted into error classes: success, throttled, auth, transient and permanent."""

from __future__ import annotations

import pickle
import traceback

import orjson
import pytest

from worker.tiktok.errors import (
    AuthError,
    PermanentError,
    ThrottledError,
    TikTokError,
    TransientError,
    classify,
)

TOKEN = "tok-3f9c2a7d41b8e6"


def envelope(code: object, message: str = "msg", request_id: str = "req-1", data: object = None) -> bytes:
    return orjson.dumps({"code": code, "message": message, "request_id": request_id, "data": data or {}})


def test_every_error_class_is_a_tiktok_error() -> None:
    for cls in (ThrottledError, TransientError, AuthError, PermanentError):
        assert issubclass(cls, TikTokError)
    assert issubclass(TikTokError, Exception)


def test_success_is_http_2xx_and_code_zero() -> None:
    assert classify(200, envelope(0, "OK")) is None
    assert classify(201, {"code": 0, "message": "OK"}) is None  # an already parsed body


@pytest.mark.parametrize(
    ("http_status", "body", "expected"),
    [
        # TikTok's usual way: HTTP 200 with a non-zero code.
        (200, envelope(40100), ThrottledError),
        (200, envelope(40016), ThrottledError),
        (200, envelope(40133), ThrottledError),
        (200, envelope(50000), TransientError),
        (200, envelope(50002), TransientError),
        (200, envelope(51234), TransientError),
        (200, envelope(40105), AuthError),
        (200, envelope(40104), AuthError),
        (200, envelope(40001), AuthError),
        (200, envelope(40002), PermanentError),
        (200, envelope(41234), PermanentError),  # unknown codes are permanent, and reported
        (200, envelope(1), PermanentError),
        (200, envelope("40100"), ThrottledError),  # a code sent as a string still counts
        # The transport's own signals.
        (429, b"", ThrottledError),
        (429, envelope(0), ThrottledError),
        (500, b"<html>oops</html>", TransientError),
        (502, envelope(40002), TransientError),
        (503, b"", TransientError),
        # Other HTTP 4xx: the body's code when it has one, else permanent.
        (400, b"", PermanentError),
        (404, b"not found", PermanentError),
        (401, envelope(40105), AuthError),
        (400, envelope(40100), ThrottledError),
        # Unreadable success answers: we cannot know the call worked.
        (200, b"", TransientError),
        (200, b"<html>gateway</html>", TransientError),
        (200, b'{"code": 0, "mess', TransientError),
        (200, b"[1, 2]", TransientError),
        (200, b'{"message": "no code"}', TransientError),
        (200, envelope(True), TransientError),
        (302, b"", TransientError),
    ],
)
def test_classify(http_status: int, body: bytes, expected: type[TikTokError]) -> None:
    error = classify(http_status, body)
    assert error is not None
    assert type(error) is expected
    assert error.http_status == http_status


def test_error_carries_tiktoks_code_message_and_request_id() -> None:
    error = classify(200, envelope(40002, "Invalid audience id", "2024abc"))
    assert isinstance(error, PermanentError)
    assert (error.code, error.message, error.request_id, error.http_status) == (
        40002,
        "Invalid audience id",
        "2024abc",
        200,
    )
    assert "Invalid audience id" in str(error)
    assert "40002" in str(error) and "2024abc" in str(error)
    assert repr(error).startswith("PermanentError(")


def test_unreadable_answer_has_no_code_and_says_so() -> None:
    error = classify(502, b"<html>")
    assert error is not None
    assert error.code is None
    assert "HTTP 502" in error.message


def test_throttled_error_keeps_retry_after() -> None:
    error = classify(429, b"", retry_after=3.0)
    assert isinstance(error, ThrottledError)
    assert error.retry_after == 3.0
    plain = classify(200, envelope(40100))
    assert isinstance(plain, ThrottledError) and plain.retry_after is None


def test_secrets_are_blanked_out_of_tiktoks_message() -> None:
    error = classify(200, envelope(40105, f"Access token {TOKEN} is invalid"), secrets=[TOKEN])
    assert error is not None
    for text in (error.message, str(error), repr(error), "".join(traceback.format_exception(error))):
        assert TOKEN not in text
    assert "[redacted]" in error.message


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("bad", code=40002, request_id="r", http_status=200),
        ThrottledError("slow down", code=40100, request_id="r", http_status=200, retry_after=2.5),
        TransientError("no answer"),
    ],
)
def test_errors_survive_pickling(error: TikTokError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.__dict__ == error.__dict__
    assert str(copy) == str(error)


# Every code the service classifies by name (TikTok's documentation and its official SDK's NumericErrorCodes), and its
# class. A code missing here is classified by the rules below it (other 5xxxx transient, the rest permanent).
EVERY_CODE: dict[int, type[TikTokError]] = {
    40100: ThrottledError, 40016: ThrottledError, 40133: ThrottledError,
    40132: ThrottledError,  # REQUEST_FREQUENCY_LIMITED
    61000: ThrottledError,  # TOO_MANY_REQUESTS_BL
    50000: TransientError, 50002: TransientError,
    60001: TransientError,  # MAINTENANCE
    40001: AuthError, 40104: AuthError, 40105: AuthError,
    40102: AuthError,  # ACCESS_TOKEN_EXPIRE
    40103: AuthError, 40106: AuthError, 40107: AuthError,
    40113: AuthError,  # APP_FORBIDDEN
    40114: AuthError,  # ADVERTISER_LOGOUT
    40130: AuthError,  # SCOPE_NOT_AUTHORIZED
    40002: PermanentError, 40000: PermanentError, 40700: PermanentError, 12345: PermanentError,
    51234: TransientError,
}


@pytest.mark.parametrize(("code", "expected"), list(EVERY_CODE.items()), ids=[str(c) for c in EVERY_CODE])
def test_every_listed_code_has_its_class(code: int, expected: type[TikTokError]) -> None:
    error = classify(200, envelope(code))
    assert type(error) is expected


def test_tiktoks_message_is_cut_to_about_a_kilobyte() -> None:
    error = classify(200, envelope(40002, "x" * 100_000))
    assert error is not None
    assert len(error.message) < 1100 and error.message.startswith("x" * 1024)
    assert "more characters" in error.message
