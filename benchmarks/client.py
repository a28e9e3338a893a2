"""The benchmark's sender: POSTs pre-serialised bodies over keep-alive HTTP/1.1 connections, in order.

The sender shares the machine with the stack it measures, so its CPU is taken from the pipeline's: aiohttp's
client spends ~150 µs of Python on a request, while writing pre-built request bytes to a socket and reading a
small, fixed-shape answer off it costs a fraction of that. It speaks only what the benchmark needs (one host,
``Content-Length`` answers, no redirects, no TLS); anything else it meets is an error that stops the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urlsplit

import orjson


class SenderError(RuntimeError):
    """The intake answered something the benchmark cannot count as accepted."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        """Send one request; return the answer's status, headers (names lower-cased) and body."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[bytes, bytes] = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        length = headers.get(b"content-length")
        if length is None:
            raise SenderError(f"answer {status} without Content-Length (chunked answers are not expected)")
        return status, headers, await self.reader.readexactly(int(length))

    def close(self) -> None:
        self.writer.close()


def _request(host: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}",
             *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def post_in_order(url: str, path: str, headers: dict[str, str], bodies: Sequence[bytes],
                        connections: int, max_ahead: int) -> tuple[int, int]:
    """POST every body to ``url`` + ``path`` over ``connections`` keep-alive connections; returns (events
    accepted, 503 answers retried).

    Body ``i`` is sent only once every body before ``i - max_ahead`` has been answered: concurrent requests
    have no order between them, and the membership check needs each exit to follow its user's entry. A 503
    is retried after its Retry-After; any other answer but 200 stops the run."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests = [_request(parts.netloc, path, headers, body) for body in bodies]
    next_body = iter(enumerate(requests))
    answered = [False] * len(requests)
    oldest_open = 0  # every body before this one has been answered
    progress = asyncio.Condition()
    accepted = retries = 0

    async def sender() -> None:
        nonlocal accepted, retries, oldest_open
        connection = _Connection(*await asyncio.open_connection(host, port))
        try:
            for index, request in next_body:  # a shared iterator: each body is taken by exactly one sender
                if index - oldest_open > max_ahead:
                    async with progress:
                        await progress.wait_for(lambda: index - oldest_open <= max_ahead)  # noqa: B023
                while True:
                    status, answer_headers, answer = await connection.exchange(request)
                    if status == 503:  # back-pressure: the same body again, after a pause
                        retries += 1
                        await asyncio.sleep(float(answer_headers.get(b"retry-after", b"1")))
                        continue
                    if status != 200:
                        raise SenderError(f"intake answered {status}: {answer[:300]!r}")
                    accepted += int(orjson.loads(answer)["accepted"])
                    break
                answered[index] = True
                if index == oldest_open:
                    while oldest_open < len(answered) and answered[oldest_open]:
                        oldest_open += 1
                    async with progress:
                        progress.notify_all()
        finally:
            connection.close()

    await asyncio.gather(*(sender() for _ in range(connections)))
    return accepted, retries
