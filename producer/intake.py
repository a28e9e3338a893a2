"""Intake: the one path every entry point (HTTP, ``ingest``, the Python API) takes into the queue.

A request goes through two steps that do no I/O, :func:`producer.intake_routing.route_request`
(validate and route every event) and :func:`producer.intake_writes.stage_writes` (what the request writes, on
one pipeline), and a thin front end per kind of Redis client does the I/O around them:

- :class:`SyncIntake` (a ``redis.Redis``) for the Python API and ``ingest``: one round trip per request;
- :class:`AsyncIntake` (a ``redis.asyncio.Redis``) for the HTTP intake, where the usual request (operations
  only) is written together with the other requests waiting at the same time (:mod:`producer.write_group`).

Both first check the backlog (cached, :data:`BACKLOG_MAX_AGE`), and when the router caps new audiences, ask
Redis about the request's new ones in one round trip and route it again only when some were refused.
A Redis failure or refusal accepts nothing of the request: :class:`StoreUnavailable` or :class:`BacklogFull`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from core.settings import Settings
from producer.intake_result import (
    RETRY_AFTER_SECONDS,
    BacklogFull,
    IntakeError,
    IntakeResult,
    StoreUnavailable,
)
from producer.intake_routing import RoutedRequest, route_request
from producer.intake_writes import QueueOptions, backlog_read_back, stage_writes
from producer.limits import NewAudienceGate, PendingAudiences
from producer.routing import Router
from producer.write_group import WriteGroup
from worker import keys
from worker.queue import BacklogCeiling

__all__ = ["AsyncIntake", "BacklogFull", "IntakeError", "IntakeResult", "StoreUnavailable",
           "SyncIntake"]

# How stale the cached backlog may get before a request pays a round trip to re-read it. Every write refreshes
# it for free, so under load the extra GET almost never happens.
BACKLOG_MAX_AGE = 0.1

log = structlog.get_logger("producer.intake")


@contextlib.contextmanager
def _store_errors(what: str) -> Iterator[None]:
    """Turn any Redis failure into :class:`StoreUnavailable` (the caller answers 503, nothing accepted), and
    the enqueue script's refusal at the backlog ceiling into :class:`BacklogFull`."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"{what}: {exc}") from exc
    except BacklogCeiling as exc:
        raise BacklogFull(f"{exc}; retry in {RETRY_AFTER_SECONDS} s") from None


class _IntakeSteps:
    """What both front ends share: the route step with its logging, the new-audience gate's bookkeeping and
    the backlog cache. No I/O."""

    def __init__(self, router: Router, settings: Settings, clock: Callable[[], float]) -> None:
        self._router = router
        self._queue = QueueOptions.from_settings(settings)
        self._max_skew_ms = round(settings.max_event_skew * 1000)
        self._clock = clock
        self._backlog = 0
        self._backlog_read_at = float("-inf")  # monotonic time of the last read; -inf forces the first one

    @property
    def backlog(self) -> int:
        """The backlog as last read (at most :data:`BACKLOG_MAX_AGE` old while requests flow)."""
        return self._backlog

    def _route_all(self, events: Iterable[object], sent_at: str | None) -> RoutedRequest:
        routed = route_request(self._router, events, now=self._clock(), max_skew_ms=self._max_skew_ms,
                               sent_at=sent_at)
        if routed.routing_errors:
            _log_routing_errors(routed.routing_errors)
        return routed

    @contextlib.contextmanager
    def _asking_about(self, pending: PendingAudiences) -> Iterator[None]:
        """Around asking Redis about a request's new audiences: when it cannot decide, forget the targets
        routing cached for them, so the next request asks again instead of taking them as admitted."""
        try:
            with _store_errors("cannot reach Redis"):
                yield
        except BaseException:
            self._router.forget_targets(frozenset(pending.candidates))
            raise

    def _route_first(self, events: Iterable[object], sent_at: str | None
                     ) -> tuple[RoutedRequest, tuple[NewAudienceGate, PendingAudiences] | None]:
        """The backlog check, then the route step: the routed request, and the gate with the new audiences
        routing met, which Redis must admit before anything is written (None when it met none, or no cap is
        set)."""
        self._check_backlog()
        gate = self._router.audience_gate
        if gate is None:
            return self._route_all(events, sent_at), None
        with gate.collecting() as pending:
            routed = self._route_all(events, sent_at)
        return routed, ((gate, pending) if pending.candidates else None)

    def _route_refusing(self, gate: NewAudienceGate, refused: frozenset[str], routed: RoutedRequest,
                        events: Iterable[object], sent_at: str | None) -> RoutedRequest:
        """``routed`` when Redis admitted every new audience; else the request routed again with those Redis
        refused rejected (the rare path: the cap was reached), so each event's answer says which of its
        audiences the limit refused."""
        if not refused:
            return routed
        self._router.forget_targets(refused)
        with gate.collecting(refused):
            return self._route_all(events, sent_at)

    def _backlog_read_back(self, results: list[Any], routed: RoutedRequest) -> None:
        self._note_backlog(backlog_read_back(results, routed, self._queue.backlog_limit))

    def _backlog_stale(self) -> bool:
        return time.monotonic() - self._backlog_read_at > BACKLOG_MAX_AGE

    def _note_backlog(self, raw: Any) -> None:
        self._backlog = int(raw or 0)
        self._backlog_read_at = time.monotonic()

    def _check_backlog(self) -> None:
        if self._backlog > self._queue.backlog_limit:
            raise BacklogFull(
                f"backlog of {self._backlog} operations is above the limit of {self._queue.backlog_limit}; "
                f"retry in {RETRY_AFTER_SECONDS} s"
            )


class SyncIntake(_IntakeSteps):
    """Validates, routes and enqueues events through a sync Redis client: the Python API and ``ingest``."""

    def __init__(self, router: Router, client: redis.Redis, settings: Settings, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(router, settings, clock)
        self._client = client

    @property
    def client(self) -> redis.Redis:
        return self._client

    def accept(self, events: Iterable[object], *, sent_at: str | None = None) -> IntakeResult:
        """Validate, route and store ``events`` in one round trip. Raises :class:`BacklogFull` or
        :class:`StoreUnavailable`, in which case nothing of the request was stored. ``sent_at``: the
        ``sentAt`` of the body that carried the events (a ``/v1/batch``), for events without their own."""
        client = self._client
        if self._backlog_stale():
            with _store_errors("cannot reach Redis"):
                self._note_backlog(client.get(keys.BACKLOG))
        routed, asking = self._route_first(events, sent_at)
        if asking is not None:
            gate, pending = asking
            with self._asking_about(pending):
                refused = gate.admit(client, pending)
            routed = self._route_refusing(gate, refused, routed, events, sent_at)
        if not routed.writes_anything():
            return routed.result(0, 0)
        with _store_errors("cannot store events in Redis"):
            pipe = client.pipeline(transaction=True)
            staged = stage_writes(pipe, routed, self._queue)
            self._backlog_read_back(pipe.execute(), routed)
        return routed.result(staged.operations, staged.creates)


class AsyncIntake(_IntakeSteps):
    """Validates, routes and enqueues events through a ``redis.asyncio`` client: the HTTP intake."""

    def __init__(self, router: Router, client: aioredis.Redis, settings: Settings, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(router, settings, clock)
        self._client = client
        self._writes: WriteGroup | None = None  # made on first use, inside the event loop

    @property
    def client(self) -> aioredis.Redis:
        return self._client

    async def accept_async(self, events: Iterable[object], *, sent_at: str | None = None) -> IntakeResult:
        """:meth:`SyncIntake.accept` for the event loop; the usual request (operations only) is written
        together with other requests waiting at the same time."""
        client = self._client
        if self._backlog_stale():
            with _store_errors("cannot reach Redis"):
                self._note_backlog(await client.get(keys.BACKLOG))
        routed, asking = self._route_first(events, sent_at)
        if asking is not None:
            gate, pending = asking
            with self._asking_about(pending):
                refused = await gate.admit_async(client, pending)
            routed = self._route_refusing(gate, refused, routed, events, sent_at)
        if routed.only_operations():
            with _store_errors("cannot store events in Redis"):
                self._note_backlog(await self._write_group().append(
                    routed.grouped, routed.now + self._queue.flush_interval, routed.counters()))
            return routed.result(routed.operations, 0)
        if not routed.writes_anything():
            return routed.result(0, 0)
        with _store_errors("cannot store events in Redis"):
            pipe = client.pipeline(transaction=True)
            staged = stage_writes(pipe, routed, self._queue)
            self._backlog_read_back(await pipe.execute(), routed)
        return routed.result(staged.operations, staged.creates)

    async def backlog_async(self) -> int:
        """Re-read the backlog now (for the metrics endpoint)."""
        with _store_errors("cannot reach Redis"):
            self._note_backlog(await self._client.get(keys.BACKLOG))
        return self._backlog

    async def ready_async(self, timeout: float = 2.0) -> bool:
        """Whether Redis answers a PING (readiness probe)."""
        try:
            return bool(await asyncio.wait_for(self._client.ping(), timeout))
        except (RedisError, OSError, TimeoutError):
            return False

    def _write_group(self) -> WriteGroup:
        if self._writes is None:
            queue = self._queue
            self._writes = WriteGroup(self._client, queue.batch_size, queue.quiet, queue.backlog_limit)
        return self._writes



def _log_routing_errors(errors: tuple[BaseException, ...]) -> None:
    """One line per request for routing bugs: the first error's type and frames (never its message or locals,
    which could hold an identifier)."""
    first = errors[0]
    log.error("routing failed", events=len(errors), error=type(first).__name__,
              where="".join(traceback.format_tb(first.__traceback__)[-3:]))
