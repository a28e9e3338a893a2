"""Group commit for the HTTP intake: the queue writes of requests that wait at the same time go to Redis as
one script call.

On these machines a Redis round trip costs the intake ~300-500 µs of CPU (redis-py's packing and parsing, and
a loopback ``send`` that wakes another process), as much as routing 20 events. Under load an intake process
has many requests in flight; while one write is on the wire, the next requests' writes queue here and leave
together as soon as it returns, so the round trips per request fall as the load rises, and an idle intake
still answers after one round trip.

Each request's operations stay together and in arrival order (requests are appended in the order they
arrive, and a target's operations from several requests are concatenated in that order), the script is
atomic, and a failed write fails every request in it: a request is answered 200 only once its operations are
stored.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from worker import keys
from worker.queue import BacklogCeiling, backlog_after, queue_commands

Grouped = dict[str, list[list[str]]]  # target -> packed operations

# Requests per script call at most, so one call never holds Redis for long (~100 operations each).
MAX_GROUP = 64


class WriteGroup:
    """Appends ``grouped`` operations for concurrent callers of one event loop, one round trip per group."""

    def __init__(self, client: aioredis.Redis, batch_size: int, quiet: float = 0.0, ceiling: int = 0) -> None:
        self._client = client
        self._batch_size = batch_size
        self._quiet = quiet
        self._ceiling = ceiling  # the backlog limit the script enforces (0: none)
        self._waiting: list[tuple[Grouped, float, asyncio.Future[int], dict[str, int] | None]] = []
        self._writer: asyncio.Task[None] | None = None

    async def append(self, grouped: Grouped, due_at: float, counters: dict[str, int] | None = None) -> int:
        """Store ``grouped`` (due at ``due_at`` at the latest) and add ``counters`` to the intake's counters
        (``keys.METRICS``); returns the backlog after the write that stored it. Raises what the write
        raised (:class:`worker.queue.BacklogCeiling` when it would have passed the backlog ceiling: then none of
        it is stored or counted)."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append((grouped, due_at, future, counters))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_all())
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
            merged: Grouped = {}
            counted: dict[str, int] = {}
            for grouped, _, _, counters in group:
                for target, packed in grouped.items():
                    merged.setdefault(target, []).extend(packed)
                if counters:
                    for name, n in counters.items():
                        counted[name] = counted.get(name, 0) + n
            try:
                backlog = await self._write(merged, min(due for _, due, _, _ in group), counted)
            except BacklogCeiling as exc:
                if len(group) == 1:
                    group[0][2].set_exception(exc)
                else:
                    # Together they would pass the ceiling; some may fit alone: each in turn, in order.
                    await self._write_each(group)
                continue
            except BaseException as exc:  # every waiting request must hear of it, cancellation included
                for _, _, future, _ in group:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for _, _, future, _ in group:
                if not future.done():
                    future.set_result(backlog)

    async def _write(self, grouped: Grouped, due_at: float, counted: dict[str, int]) -> int:
        # A one-command pipeline rather than a bare EVAL: the same round trip, and every intake write (this
        # one included) is queued on a pipeline by worker.queue.queue_commands, so all fail the same way.
        pipe = self._client.pipeline(transaction=bool(counted))
        queue_commands(pipe, grouped, due_at, self._batch_size, self._quiet, self._ceiling)
        for name, n in counted.items():
            pipe.hincrby(keys.METRICS, name, n)
        reply = (await pipe.execute())[0]
        try:
            return backlog_after(reply, grouped, self._ceiling)
        except BacklogCeiling:
            if counted:  # the counters went in with the append the script refused: take them back
                pipe = self._client.pipeline(transaction=True)
                for name, n in counted.items():
                    pipe.hincrby(keys.METRICS, name, -n)
                await pipe.execute()
            raise

    async def _write_each(self, group: list[tuple[Grouped, float, asyncio.Future[int], dict[str, int] | None]]
                          ) -> None:
        for grouped, due_at, future, counters in group:
            try:
                backlog = await self._write(grouped, due_at, dict(counters or {}))
            except BaseException as exc:
                if not future.done():
                    future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            if not future.done():
                future.set_result(backlog)
