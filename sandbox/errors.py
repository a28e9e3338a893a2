"""TikTok's answer codes, as the sandbox uses them, and the exception handlers raise to answer one.

TikTok answers almost everything with HTTP 200 and a JSON envelope whose ``code`` says what happened, so an
:class:`ApiError` is not an HTTP error: the route turns it into ``{"code": ..., "message": ...}``.
"""

from __future__ import annotations

OK = 0
NO_PERMISSION = 40001
INVALID_PARAMS = 40002
RATE_LIMITED = 40100
# Wrong app_id / secret pair in the OAuth exchange.
INVALID_APP = 40101
TOKEN_MISSING = 40104
TOKEN_INVALID = 40105
# Unknown or expired auth_code in the OAuth exchange.
INVALID_AUTH_CODE = 40110
SYSTEM_ERROR = 50000
SERVICE_ERROR = 50002

MESSAGES: dict[int, str] = {
    OK: "OK",
    RATE_LIMITED: "Too many requests. Please retry in some random time.",
    TOKEN_MISSING: "Access token is null. Send it in the Access-Token header.",
    TOKEN_INVALID: "Access token is incorrect or has been revoked.",
    SYSTEM_ERROR: "System error. Please try again later.",
    SERVICE_ERROR: "Internal service error. Please try again later.",
}


class ApiError(Exception):
    """Answer the current request with TikTok ``code`` and ``message`` (HTTP 200)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message if message is not None else MESSAGES.get(code, "Error")
        super().__init__(f"{code}: {self.message}")


def invalid(message: str) -> ApiError:
    """A 40002: the request is malformed; ``message`` names the field and the problem."""
    return ApiError(INVALID_PARAMS, message)
