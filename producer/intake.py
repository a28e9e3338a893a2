"""Intake: the one path every entry point (HTTP, ``ingest``, the Python API) takes into the queue.

Per request, each event is validated and routed into operations; then everything the request produces goes to
Redis in *one* pipelined MULTI/EXEC round trip: the operations (queue contract of :mod:`worker.queue`),
audience-create requests, the rejection counters and log, and the intake's counters in ``keys.METRICS``
(``unmatched``, ``opted_out``, ``clamped``). Each event's time is read first (:mod:`producer.event_time`).
Either all of it is stored or the caller gets :class:`StoreUnavailable` and answers the sender with a failure,
so a success answer always means "stored".
(The converse is not guaranteed: a reply lost after EXEC turns a stored request into a failure answer, and the
sender's resend duplicates it, which at-least-once delivery tolerates.)

The per-event path is plain Python with no I/O, logging or awaits: at ~100k+ events/s every microsecond per
event is a tenth of the budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import redis
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from core.settings import Settings
from producer.event_time import MESSAGE_ID_MAX, EventTimeError, event_ms
from producer.write_group import WriteGroup
from worker import keys
from worker.event_order import METRIC_CLAMPED
from worker.queue import BacklogCeiling, backlog_after, queue_commands

if TYPE_CHECKING:
    from producer.limits import NewAudienceGate, PendingAudiences
    from producer.routing import AudienceCreate, MappingOutcome, Router, RouteResult

# Stream of legacy ``createAudience`` requests, one entry per distinct request, field ``c`` = JSON object
# ``{"destination", "advertiser_id", "name"}``. (Belongs in worker.keys once the worker consumes it.)
CREATES = keys.CREATES
CREATE_FIELD = "c"

REJECTED_LOG_CAP = 1000
# How stale the cached backlog may get before a request pays a round trip to re-read it. Every write refreshes
# it for free, so under load the extra GET almost never happens.
BACKLOG_MAX_AGE = 0.1
# What 503 answers tell senders: long enough for workers to drain a bit, short enough not to stall sources.
RETRY_AFTER_SECONDS = 5

_MESSAGE_ID_MAX = 200

log = structlog.get_logger("producer.intake")

Validator = Callable[[object], dict[str, Any]]
Grouped = dict[str, list[list[Any]]]  # target -> packed operations, as worker.queue.group_by_target makes it


class IntakeError(Exception):
    """Base of the failures that make intake accept nothing of a request."""

    retry_after: int = RETRY_AFTER_SECONDS
    # Set by callers that split a long input into several requests: what the earlier requests stored.
    partial: IntakeResult | None = None


class BacklogFull(IntakeError):
    """The backlog in Redis is above the configured ceiling: the sender should retry later."""


class StoreUnavailable(IntakeError):
    """Redis could not be reached or refused the write: nothing of the request was accepted."""


@dataclass(slots=True)
class IntakeResult:
    accepted: int = 0
    rejected: int = 0
    # One entry per event a mapping refused (others need no answer): index in the request, messageId, status
    # ("rejected": nothing of it was kept; "partial": other mappings accepted it), reason (human-readable),
    # code (stable reason code) and, when mappings judged it, "mappings": each matched mapping's outcome.
    results: list[dict[str, Any]] = field(default_factory=list)
    operations: int = 0  # operations written to the queue
    creates: int = 0  # audience-create requests written
    unmatched: int = 0  # accepted events no mapping subscribed to
    opted_out: int = 0  # accepted events whose ``integrations`` turned a destination off
    clamped: int = 0  # events whose time was too far in the future, clamped to the time received
    dropped_identifiers: dict[str, int] = field(default_factory=dict)
    # Refusals by code: of rejected events, and of single mappings refusing an otherwise accepted event.
    rejected_by_code: dict[str, int] = field(default_factory=dict)

    def merge(self, other: IntakeResult, offset: int) -> None:
        """Fold in the result of a later chunk whose events start at ``offset`` in the whole sequence."""
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.results.extend({**r, "index": r["index"] + offset} for r in other.results)
        self.operations += other.operations
        self.creates += other.creates
        self.unmatched += other.unmatched
        self.opted_out += other.opted_out
        self.clamped += other.clamped
        for counts, more in ((self.dropped_identifiers, other.dropped_identifiers),
                             (self.rejected_by_code, other.rejected_by_code)):
            for name, n in more.items():
                counts[name] = counts.get(name, 0) + n


class _Rejection(NamedTuple):
    position: int  # index of the event in the request
    message_id: str | None
    reason: str
    code: str
    destination: str | None = None  # the destination and 1-based mapping that refused it, when one did
    mapping: int | None = None
    # Every matched mapping's outcome, when mappings judged the event; ``partial``: others accepted it.
    outcomes: tuple[MappingOutcome, ...] = ()
    partial: bool = False


@dataclass(slots=True)
class _Routed:
    """What a request's events made, before anything is written."""

    creates: list[AudienceCreate]
    rejections: list[_Rejection]  # whole events refused, and single mappings' refusals (``partial``)
    unmatched: int
    dropped: dict[str, int]
    count: int
    now: float
    opted_out: int = 0
    clamped: int = 0

    def writes_anything(self, grouped: Grouped) -> bool:
        return bool(grouped or self.creates or self.rejections or self.counters())

    def counters(self) -> dict[str, int]:
        """The intake counters (``keys.METRICS`` fields) this request adds to; only non-zero ones."""
        return {name: n for name, n in (("unmatched", self.unmatched), ("opted_out", self.opted_out),
                                        (METRIC_CLAMPED, self.clamped)) if n}


def _message_id(obj: object) -> str | None:
    if isinstance(obj, dict):
        mid = obj.get("messageId")
        if isinstance(mid, str):
            return mid[:_MESSAGE_ID_MAX]
    return None


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


def _codes(rejection: _Rejection) -> list[str]:
    """The refusal codes a rejection counts under: each refusing mapping's, or the event's one code."""
    codes = [o.code for o in rejection.outcomes if o.code is not None]
    return codes or [rejection.code]


def _log_entry(rejection: _Rejection, now: float) -> bytes:
    """A rejected-events log record: what was refused and why, never the event's identifiers."""
    entry: dict[str, Any] = {"time": now, "messageId": rejection.message_id, "reason": rejection.reason,
                             "rejection_code": rejection.code}
    if rejection.destination is not None:
        entry["destination"] = rejection.destination
        entry["mapping"] = rejection.mapping
    return orjson.dumps(entry)


def _log_routing_errors(errors: list[BaseException]) -> None:
    """One line per request for routing bugs: the first error's type and frames (never its message or locals,
    which could hold an identifier)."""
    first = errors[0]
    log.error("routing failed", events=len(errors), error=type(first).__name__,
              where="".join(traceback.format_tb(first.__traceback__)[-3:]))


def _default_validator() -> tuple[Validator, type[Exception]]:
    # Imported late so that this module (and tests that inject a validator) work without producer.events.
    from producer.events import EventError, validate_event

    return validate_event, EventError


class Intake:
    """Validates, routes and enqueues events. Build it with a sync redis client to use :meth:`accept`, or a
    ``redis.asyncio`` client to use :meth:`accept_async`.

    ``validator`` defaults to :func:`producer.events.validate_event` (rejecting on its ``EventError``); tests
    may pass another with the exception type it raises as ``event_error``."""

    def __init__(self, router: Router, client: redis.Redis | aioredis.Redis, settings: Settings, *,
                 validator: Validator | None = None, event_error: type[Exception] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if validator is None:
            validator, default_error = _default_validator()
            event_error = event_error or default_error
        self._router = router
        self._client = client
        self._validate = validator
        self._event_error: type[Exception] = event_error or ValueError
        self._flush_interval = settings.flush_interval
        self._batch_size = settings.batch_size
        self._quiet = settings.quiet_flush
        self._max_skew_ms = round(settings.max_event_skew * 1000)
        self._backlog_limit = settings.backlog_limit
        self._clock = clock
        self._backlog = 0
        self._backlog_read_at = float("-inf")  # monotonic time of the last read; -inf forces the first one
        self._writes: WriteGroup | None = None  # made on first use, inside the event loop

    @property
    def client(self) -> redis.Redis | aioredis.Redis:
        return self._client

    @property
    def backlog(self) -> int:
        """The backlog as last read (at most :data:`BACKLOG_MAX_AGE` old while requests flow)."""
        return self._backlog

    # -- sync ------------------------------------------------------------------------------------------------

    def accept(self, events: Sequence[object], *, sent_at: str | None = None) -> IntakeResult:
        """Validate, route and store ``events``. Raises :class:`BacklogFull` or :class:`StoreUnavailable`, in
        which case nothing of the request was stored. ``sent_at``: the ``sentAt`` of the body that carried
        the events (a ``/v1/batch``), for events without their own."""
        client = self._sync_client()
        if self._backlog_stale():
            with _store_errors("cannot reach Redis"):
                self._note_backlog(client.get(keys.BACKLOG))
        self._check_backlog()
        gate = getattr(self._router, "audience_gate", None)  # test doubles may have none
        if gate is None:
            routed, grouped = self._route_all(events, sent_at)
        else:
            with gate.collecting() as pending:
                routed, grouped = self._route_all(events, sent_at)
            if pending.candidates:
                with self._gate_errors(pending), _store_errors("cannot reach Redis"):
                    refused = gate.admit(client, pending)
                if refused:
                    routed, grouped = self._route_refusing(gate, refused, events, sent_at)
        writes = (0, 0)
        if routed.writes_anything(grouped):
            with _store_errors("cannot store events in Redis"):
                pipe = client.pipeline(transaction=True)
                writes = self._queue_writes(pipe, routed, grouped)
                results = pipe.execute()
            with _store_errors("cannot store events in Redis"):
                self._after_write(results, grouped)
        return self._result(routed, *writes)

    # -- async -----------------------------------------------------------------------------------------------

    async def accept_async(self, events: Sequence[object], *, sent_at: str | None = None) -> IntakeResult:
        """:meth:`accept` for asyncio callers (the HTTP intake); needs a ``redis.asyncio`` client."""
        client = self._async_client()
        if self._backlog_stale():
            with _store_errors("cannot reach Redis"):
                self._note_backlog(await client.get(keys.BACKLOG))
        self._check_backlog()
        gate = getattr(self._router, "audience_gate", None)  # test doubles may have none
        if gate is None:
            routed, grouped = self._route_all(events, sent_at)
        else:
            with gate.collecting() as pending:
                routed, grouped = self._route_all(events, sent_at)
            if pending.candidates:
                with self._gate_errors(pending), _store_errors("cannot reach Redis"):
                    refused = await gate.admit_async(client, pending)
                if refused:
                    routed, grouped = self._route_refusing(gate, refused, events, sent_at)
        writes = (0, 0)
        if grouped and not routed.creates and not routed.rejections:
            # The usual request: operations only, written together with other requests waiting right now.
            with _store_errors("cannot store events in Redis"):
                backlog = await self._write_group(client).append(
                    grouped, routed.now + self._flush_interval, routed.counters())
            self._note_backlog(backlog)
            writes = (sum(len(packed) for packed in grouped.values()), 0)
        elif routed.writes_anything(grouped):
            with _store_errors("cannot store events in Redis"):
                pipe = client.pipeline(transaction=True)
                writes = self._queue_writes(pipe, routed, grouped)
                results = await pipe.execute()
            with _store_errors("cannot store events in Redis"):
                self._after_write(results, grouped)
        return self._result(routed, *writes)

    async def backlog_async(self) -> int:
        """Re-read the backlog now (for the metrics endpoint)."""
        with _store_errors("cannot reach Redis"):
            self._note_backlog(await self._async_client().get(keys.BACKLOG))
        return self._backlog

    async def ready_async(self, timeout: float = 2.0) -> bool:
        """Whether Redis answers a PING (readiness probe)."""
        try:
            return bool(await asyncio.wait_for(self._async_client().ping(), timeout))
        except (RedisError, OSError, TimeoutError):
            return False

    # -- shared ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _gate_errors(self, pending: PendingAudiences) -> Iterator[None]:
        """Redis could not decide on the request's new audiences: forget the targets routing cached for them,
        so the next request asks again instead of taking them as admitted."""
        try:
            yield
        except BaseException:
            self._router.forget_targets(frozenset(pending.candidates))
            raise

    def _route_refusing(self, gate: NewAudienceGate, refused: frozenset[str], events: Sequence[object],
                        sent_at: str | None) -> tuple[_Routed, Grouped]:
        """Route the request again with the new audiences Redis refused rejected (the rare path: the cap was
        reached), so each event's answer says which of its audiences the limit refused."""
        self._router.forget_targets(refused)
        with gate.collecting(refused):
            return self._route_all(events, sent_at)

    def _sync_client(self) -> redis.Redis:
        if not isinstance(self._client, redis.Redis):
            raise TypeError("Intake.accept needs a sync redis client; use accept_async with redis.asyncio")
        return self._client

    def _write_group(self, client: aioredis.Redis) -> WriteGroup:
        if self._writes is None:
            self._writes = WriteGroup(client, self._batch_size, self._quiet, self._backlog_limit)
        return self._writes

    def _async_client(self) -> aioredis.Redis:
        if not isinstance(self._client, aioredis.Redis):
            raise TypeError("Intake.accept_async needs a redis.asyncio client; use accept with redis.Redis")
        return self._client

    def _backlog_stale(self) -> bool:
        return time.monotonic() - self._backlog_read_at > BACKLOG_MAX_AGE

    def _note_backlog(self, raw: Any) -> None:
        self._backlog = int(raw or 0)
        self._backlog_read_at = time.monotonic()

    def _check_backlog(self) -> None:
        if self._backlog > self._backlog_limit:
            raise BacklogFull(
                f"backlog of {self._backlog} operations is above the limit of {self._backlog_limit}; "
                f"retry in {RETRY_AFTER_SECONDS} s"
            )

    def _route_all(self, events: Iterable[object], sent_at: str | None = None) -> tuple[_Routed, Grouped]:
        """The per-event hot loop: keep it free of I/O, logging and attribute look-ups it can hoist.

        Each event gets its time (:func:`producer.event_time.event_ms`, against one receive time for the
        request) and goes through :meth:`Router.route_into` (operations packed straight into ``grouped``, no
        result objects); one it declines (a refusal, a create, a dropped identifier, an opt-out) is routed
        again with :meth:`Router.route`, which says why."""
        validate = self._validate
        event_error = self._event_error
        route = self._router.route
        route_into = getattr(self._router, "route_into", None)  # test doubles may offer route() only
        now = self._clock()
        received_ms = int(now * 1000)
        max_skew_ms = self._max_skew_ms
        if sent_at.__class__ is not str:
            sent_at = None
        grouped: Grouped = {}
        creates: list[AudienceCreate] = []
        rejections: list[_Rejection] = []
        dropped: dict[str, int] = {}
        unmatched = opted_out = clamped = 0
        count = 0
        routing_errors: list[BaseException] = []
        for index, obj in enumerate(events):
            count += 1
            try:
                event = validate(obj)
                ms = event_ms(event, received_ms, sent_at)
            except (event_error, EventTimeError) as exc:
                code = getattr(exc, "code", None)
                rejections.append(_Rejection(index, _message_id(obj), str(exc),
                                             code if isinstance(code, str) else "invalid_event"))
                continue
            if ms - received_ms > max_skew_ms:  # producer.event_time.clamp, inline
                ms = received_ms
                clamped += 1
            mid = event.get("messageId")  # producer.event_time.message_id, inline: this runs per event
            if mid.__class__ is not str or not ms:  # an event without a time of its own goes by arrival
                mid = ""
            elif len(mid) > MESSAGE_ID_MAX:
                mid = mid[:MESSAGE_ID_MAX]
            try:
                if route_into is not None:
                    matched = route_into(event, grouped, ms, mid)
                    if matched is not None:
                        if not matched:
                            unmatched += 1
                        continue
                outcome: RouteResult = route(event, ms, mid)
            except Exception as exc:
                # A routing bug on one event must not fail (and make the sender resend) the whole request;
                # the rejection is answered and counted so it is not silent.
                routing_errors.append(exc)
                rejections.append(_Rejection(index, _message_id(event),
                                             f"internal error while routing the event ({type(exc).__name__})",
                                             "internal_error"))
                continue
            if outcome.rejection is not None:
                rejections.append(_Rejection(index, _message_id(event), outcome.rejection,
                                             outcome.rejection_code or "rejected",
                                             outcome.rejected_destination, outcome.rejected_mapping,
                                             tuple(outcome.outcomes)))
                continue
            refusals = outcome.refusals
            if refusals:
                first = refusals[0]
                rejections.append(_Rejection(index, _message_id(event), "; ".join(str(o.reason) for o in refusals),
                                             first.code or "rejected", first.destination, first.mapping,
                                             tuple(outcome.outcomes), partial=True))
            for op in outcome.operations:
                grouped.setdefault(op.target.name, []).append(op.pack())
            if outcome.creates:
                creates.extend(outcome.creates)
            if outcome.opted_out:
                opted_out += 1
            elif not outcome.matched_mappings:
                unmatched += 1
            if outcome.dropped_identifiers:
                for name, n in outcome.dropped_identifiers.items():
                    dropped[name] = dropped.get(name, 0) + n
        if routing_errors:
            _log_routing_errors(routing_errors)
        routed = _Routed(creates, rejections, unmatched, dropped, count, now, opted_out, clamped)
        return routed, grouped

    def _queue_writes(self, pipe: Any, routed: _Routed, grouped: Grouped) -> tuple[int, int]:
        """Queue the request's writes on ``pipe``; the first command (the queue script) or else the last one
        reads the backlog back, so the cache is refreshed by the same round trip. Returns (operations,
        creates) queued."""
        now = routed.now
        operations = 0
        if grouped:
            queue_commands(pipe, grouped, now + self._flush_interval, self._batch_size, self._quiet,
                           self._backlog_limit)
            operations = sum(len(packed) for packed in grouped.values())
        distinct_creates = {(c.destination, c.advertiser_id, c.name): None for c in routed.creates}
        for destination, advertiser_id, name in distinct_creates:
            entry = {"destination": destination, "advertiser_id": advertiser_id, "name": name}
            pipe.xadd(CREATES, {CREATE_FIELD: orjson.dumps(entry)})
        for counter, n in routed.counters().items():
            pipe.hincrby(keys.METRICS, counter, n)
        if routed.rejections:
            for code, n in Counter(code for r in routed.rejections for code in _codes(r)).items():
                pipe.hincrby(keys.REJECTED, code, n)
            log = [_log_entry(r, now) for r in routed.rejections[-REJECTED_LOG_CAP:]]
            pipe.lpush(keys.REJECTED_LOG, *log)
            pipe.ltrim(keys.REJECTED_LOG, 0, REJECTED_LOG_CAP - 1)
        if not grouped:
            pipe.get(keys.BACKLOG)
        return operations, len(distinct_creates)

    def _after_write(self, results: list[Any], grouped: Grouped) -> None:
        """Note the backlog read back by the write; raises :class:`BacklogCeiling` if the queue script refused
        the operations (the request's rejection counters and create requests were stored all the same)."""
        if grouped:
            self._note_backlog(backlog_after(results[0], grouped, self._backlog_limit))
        else:
            self._note_backlog(results[-1])

    @staticmethod
    def _result(routed: _Routed, operations: int, creates: int) -> IntakeResult:
        rejected_by_code: dict[str, int] = {}
        results = []
        partial = 0
        for r in routed.rejections:
            entry: dict[str, Any] = {"index": r.position, "messageId": r.message_id,
                                     "status": "partial" if r.partial else "rejected",
                                     "reason": r.reason, "code": r.code}
            if r.outcomes:
                entry["mappings"] = [o.describe() for o in r.outcomes]
            results.append(entry)
            partial += r.partial
            for code in _codes(r):
                rejected_by_code[code] = rejected_by_code.get(code, 0) + 1
        rejected = len(routed.rejections) - partial
        return IntakeResult(
            accepted=routed.count - rejected,
            rejected=rejected,
            results=results,
            operations=operations,
            creates=creates,
            unmatched=routed.unmatched,
            opted_out=routed.opted_out,
            clamped=routed.clamped,
            dropped_identifiers=routed.dropped,
            rejected_by_code=rejected_by_code,
        )
