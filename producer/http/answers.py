"""The shapes of the intake's answers.

Every error answer is ``{"success": false, "code": "<snake_case>", "message": "..."}``: Segment's and
RudderStack's Python libraries read ``code`` and ``message`` from it (RudderStack's turns any other shape into
a KeyError that it retries and then drops). No answer repeats a header's value.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import hdrs, web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(Exception):
    """An answer other than success, raised from deep in a handler and turned into a response at the top.
    ``code`` is a stable snake_case name for the problem; the message says it in a sentence."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers

    def response(self) -> web.Response:
        return error_response(self.status, self.code, str(self), self.headers)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """The one shape of every error answer."""
    return json_response(status, {"success": False, "code": code, "message": message}, headers)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json",
                        headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals (unknown path 404, wrong method 405, its body-size 413...) in the one error
    shape, so a client reading ``code``/``message`` never meets a plain-text body."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_").replace("-", "_")
        headers = {k: v for k, v in exc.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
        return error_response(exc.status, code, exc.text or exc.reason, headers)
