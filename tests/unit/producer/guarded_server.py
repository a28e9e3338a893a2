"""aiohttp's test server with the intake's connection guards (producer.protocol), as ``serve`` runs them."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from producer.http.connections import GuardedAppRunner


class GuardedTestServer(TestServer):
    def __init__(self, app: web.Application, *, header_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_runner(self, **kwargs: Any) -> GuardedAppRunner:
        # As serve runs: a handler is not cancelled when its client hangs up (it sees the disconnect).
        kwargs["handler_cancellation"] = False
        return GuardedAppRunner(self.app, header_timeout=self._header_timeout, **kwargs)
