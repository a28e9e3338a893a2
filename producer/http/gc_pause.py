"""Holding the cyclic garbage collector off while a large request is in hand.

A 16 MB webhook parses into ~75,000 events, half a million containers, all alive until the request is
answered. Routing them allocates more, so the young-generation collections (every 50,000 allocations,
core.heap) run ten-odd times, and every tenth promotes into a middle-generation collection that rescans
every surviving container: the whole parsed request, ~100 ms with the event loop stopped (measured: the
slowest ``/healthz`` answer during such a webhook). None of it is cyclic garbage: the parsed JSON and the
packed operations are freed by reference counting when the request ends.

So the collector is off while large requests are in hand and back on when the last one is done, after
its events are freed (the wrapped handler's frame is gone by then, so the next collection finds them
neither alive nor to scan). Real cycles made meanwhile are collected then. Requests that overlap without end
cannot keep it off: past :data:`MAX_PAUSE` seconds it is turned back on and left on until none is in hand.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

# The longest the collector stays off while large requests keep overlapping (a 16 MB webhook takes ~0.5 s).
MAX_PAUSE = 5.0

Request = TypeVar("Request")
Response = TypeVar("Response")


class CollectorPause:
    """Counts the large requests in hand; the collector is off while there is any (up to ``max_pause``)."""

    def __init__(self, *, max_pause: float = MAX_PAUSE, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_pause = max_pause
        self._clock = clock
        self._holders = 0
        self._paused_at: float | None = None  # when this turned the collector off; None: it did not

    @property
    def holders(self) -> int:
        return self._holders

    def enter(self) -> None:
        if self._holders == 0 and gc.isenabled():
            gc.disable()
            self._paused_at = self._clock()
        elif self._paused_at is not None and self._clock() - self._paused_at > self._max_pause:
            self._resume()  # overlapping requests kept it off too long: collect as usual until all are done
        self._holders += 1

    def exit(self) -> None:
        self._holders -= 1
        if self._holders == 0:
            self._resume()

    def _resume(self) -> None:
        if self._paused_at is not None:
            gc.enable()
            self._paused_at = None

    def around(self, handler: Callable[[Request], Awaitable[Response]],
               large: Callable[[Request], bool]) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` with the collector held off while it runs for a ``large`` request (its locals are
        freed when it returns, before the collector may run again)."""

        async def held(request: Request) -> Response:
            if not large(request):
                return await handler(request)
            self.enter()
            try:
                return await handler(request)
            finally:
                self.exit()

        return held
