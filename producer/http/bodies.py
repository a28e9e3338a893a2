"""Reading a request body defensively: bounded in size and time, its encoding checked; and parsing a large
JSON array in pieces. Refusals are :class:`BodyRefused`, which the HTTP layer answers with the status and code
it carries."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

# Content-Encodings aiohttp inflates as the body arrives; anything else would reach the JSON parser as noise.
ACCEPTED_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})

_CODES = {400: "invalid_request", 408: "request_timeout", 413: "body_too_large", 415: "unsupported_encoding"}


class BodyRefused(Exception):
    """The body is refused: answer ``status`` with ``code`` and this message."""

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "invalid_request")


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit``: by Content-Length before
    reading, and while reading (chunked bodies, and gzip bodies that aiohttp inflates as they arrive); with
    408 when it has not all arrived within ``timeout`` seconds; with 415/400 when its encoding is unknown or
    it is not what its ``Content-Encoding`` says."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
    if encoding not in ACCEPTED_ENCODINGS:
        raise BodyRefused(415, "unsupported Content-Encoding: send the body plain, gzip or deflate")
    length = request.content_length
    if length is not None and length > limit:
        raise BodyRefused(413, f"body of {length} bytes is over this route's limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise BodyRefused(413, f"body is over this route's limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefused(408, f"the body did not arrive within {timeout:g} s") from None
    except HttpProcessingError as exc:  # aiohttp's inflater refused it (aiohttp wraps its own errors too)
        raise BodyRefused(400, f"the body is not valid {encoding or 'data'} as its Content-Encoding says "
                              f"({type(exc).__name__})", code="bad_encoding") from None
    except Exception as exc:
        if is_bad_encoding(exc):
            raise BodyRefused(400, f"the body is not valid {encoding} as its Content-Encoding says",
                             code="bad_encoding") from None
        raise
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def is_bad_encoding(exc: BaseException) -> bool:
    """Whether reading a body failed because it could not be inflated (aiohttp raises its payload error with
    the inflater's error as the cause, or the inflater's error itself, depending on where it fails)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, HttpProcessingError) or type(seen).__name__ in ("error", "BadGzipFile"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# A JSON array body larger than this is parsed in pieces of about this size, yielding to the event loop between
# them (orjson parses ~100 MB/s here: ~10 ms a piece instead of ~150 ms for a whole 16 MB webhook).
PARSE_PIECE = 1024 * 1024
# Where one element of an array of objects ends and the next begins (whitespace allowed, as any sender may).
_BETWEEN_OBJECTS = re.compile(rb"\}\s*,\s*\{")
# A cut can land inside an element (between two objects of a nested array, or in a string): the piece then
# does not parse and the next cut is tried, this many times before the body is parsed whole.
_CUT_ATTEMPTS = 16


async def parse_large_array(body: bytes) -> list[Any] | None:
    """The elements of ``body`` when it is a JSON array of objects, parsed piece by piece with the event loop
    free in between; None when it is not (or not cleanly cut): parse it whole then.

    A piece is cut at a ``},{`` between two elements. A cut that falls inside a string leaves that piece's
    string unterminated, and one inside a nested array leaves its brackets unbalanced: either way the piece
    does not parse, and the next cut is tried. So pieces that parse are exactly runs of the array's
    elements."""
    if len(body) <= PARSE_PIECE or not body.lstrip().startswith(b"["):
        return None
    elements: list[Any] = []
    start = body.index(b"[") + 1
    while True:
        search_from = start + PARSE_PIECE
        for _ in range(_CUT_ATTEMPTS):
            cut = _BETWEEN_OBJECTS.search(body, search_from)
            piece = body[start:cut.start() + 1] if cut else body[start:].rstrip()
            try:
                parsed = orjson.loads(b"[" + piece + (b"]" if cut else b""))
                break
            except orjson.JSONDecodeError:
                if cut is None:
                    return None
                search_from = cut.end()  # that cut was inside an element: try the next one
        else:
            return None
        if not isinstance(parsed, list):
            return None
        elements.extend(parsed)
        if cut is None:
            return elements
        start = cut.end() - 1  # at the next element's "{"
        await asyncio.sleep(0)
