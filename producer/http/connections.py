"""The intake's connection handling: what aiohttp does before a request reaches a handler, made safe for
hostile clients.

- **Header-read timeout.** aiohttp waits forever for the headers of a request (a connection that sends half
  a request line, or nothing at all, is held as long as the client likes); here a connection whose request
  head has not arrived within ``header_timeout`` seconds is closed. Idle keep-alive connections are closed by
  aiohttp's own ``keepalive_timeout``, body reads are bounded by the handlers.
- **Malformed requests answered without echoing them.** aiohttp answers a request it cannot parse (a control
  character in a header, an over-long header line) with the parser's message, which quotes the offending
  bytes, and logs it with the traceback: an ``Authorization`` header would land in both. Here the answer is
  ``{"success": false, "code": "malformed_request", ...}`` naming only the kind of error, and the log line
  (debug: a stranger's broken request is not the operator's problem) carries the error's type only.

aiohttp offers no public seam for either, so :class:`GuardedAppRunner` swaps in a subclass of its request
handler. The hostile-client tests of the HTTP intake (timeouts, malformed headers) pin the aiohttp behaviour
this relies on, so an aiohttp upgrade that moves it fails there.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = structlog.get_logger("producer.http")

DEFAULT_HEADER_TIMEOUT = 10.0
LINGERING_TIME = 2.0


class GuardedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol with a header-read deadline and answers that quote nothing."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = manager.header_timeout
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        requests_before = self._request_count
        super().data_received(data)
        if self._request_count != requests_before:
            self._disarm_header_deadline()  # a whole request head arrived
        elif not self._request_in_progress and not self._messages:
            # Part of a request head (a first request, or the next one on a kept-alive connection).
            self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None and self._header_timeout > 0:
            self._header_deadline = self._loop.call_later(self._header_timeout, self._header_overdue,
                                                          self._request_count)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_overdue(self, requests_then: int) -> None:
        self._header_deadline = None
        if self._request_count == requests_then and not self._request_in_progress and not self._messages:
            log.debug("connection closed: request head not received in time", timeout=self._header_timeout)
            self.force_close()

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        # Never the exception's message or traceback: both can quote the request's headers.
        if status >= 500:
            log.error("request failed before reaching a handler", status=status,
                      error=type(exc).__name__ if exc else None)
        else:
            log.debug("malformed request refused", status=status, error=type(exc).__name__ if exc else None)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had begun; the connection is closed instead")
        if status < 500:
            body = {"success": False, "code": "malformed_request",
                    "message": f"the request is not valid HTTP ({type(exc).__name__ if exc else 'bad request'}); "
                               "its content is not repeated here"}
        else:
            body = {"success": False, "code": "internal_error", "message": "internal error"}
        response = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's low-level server making :class:`GuardedRequestHandler` connections."""

    header_timeout: float = DEFAULT_HEADER_TIMEOUT

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are :class:`GuardedRequestHandler` ones."""

    def __init__(self, app: web.Application, *, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                 **kwargs: Any) -> None:
        # After refusing a body it did not read (401, 413), aiohttp reads and discards the rest for up to
        # lingering_time seconds so the client sees the answer before the connection closes; 10 s by default
        # is 10 s of a stranger's upload for nothing.
        kwargs.setdefault("lingering_time", LINGERING_TIME)
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer
        server.header_timeout = self._header_timeout  # type: ignore[attr-defined]
        return server


async def serve_until_stopped(app: web.Application, host: str, port: int, *, reuse_port: bool,
                              header_timeout: float, keepalive_timeout: float,
                              stopped: asyncio.Event) -> None:
    """Serve ``app`` on ``host:port`` with guarded connections until ``stopped`` is set."""
    runner = GuardedAppRunner(app, header_timeout=header_timeout, keepalive_timeout=keepalive_timeout,
                              access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port)
        await site.start()
        await stopped.wait()
    finally:
        await runner.cleanup()
