"""The event routes: ``POST /v1/track``, ``/v1/identify``, ``/v1/batch`` and ``/v1/webhook``.

Each authenticates, reads its body within the route's limit (:func:`producer.http.bodies.read_body`), parses it
once with orjson and hands the events to :meth:`producer.intake.AsyncIntake.accept_async`. A 200 always means the
events are stored in Redis; while they cannot be stored the answer is 503 with ``Retry-After``, so senders
retry instead of losing events.

Hostile clients are refused precisely and cheaply: a webhook with neither a write key nor a plausible
signature is refused before its body is read; a request of more than ``TTA_MAX_REQUEST_EVENTS`` events is 413;
a large request is parsed (:func:`producer.http.bodies.parse_large_array`) and routed in slices that yield to the
event loop, so ``/healthz`` and other requests are answered meanwhile.

The request path stays thin (one orjson parse, one intake call, a few counter increments) because the
per-event cost of routing is the budget.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import structlog
from aiohttp import hdrs, web

from core.redis_memory import is_out_of_memory
from core.settings import Settings
from producer.batch_context import BatchLevelError, batch_level, with_batch_level
from producer.http.answers import HttpError, error_response, json_response
from producer.http.auth import SIGNATURE_HEADER, Authenticator
from producer.http.bodies import parse_large_array, read_body
from producer.http.metrics import IntakeMetrics
from producer.intake import AsyncIntake, BacklogFull, IntakeResult, StoreUnavailable

SINGLE_EVENT_LIMIT = 32 * 1024
WEBHOOK_LIMIT = 16 * 1024 * 1024
# A request with more events than this is routed in slices of this many, yielding to the event loop between
# them: ~30 ms of routing at a time, so one large webhook never stalls the other connections.
ROUTE_SLICE = 2_000

log = structlog.get_logger("producer.http")


class EventRoutes:
    """The handlers of the event routes, sharing one intake, authenticator and set of metrics."""

    def __init__(self, intake: AsyncIntake, auth: Authenticator, metrics: IntakeMetrics, settings: Settings) -> None:
        self._intake = intake
        self._auth = auth
        self._metrics = metrics
        self._batch_limit = settings.max_batch_bytes
        self._body_timeout = settings.body_timeout
        self._max_events = settings.max_request_events
        self._last_store_warning = 0.0

    async def track(self, request: web.Request) -> web.StreamResponse:
        return await self._single(request, "track")

    async def identify(self, request: web.Request) -> web.StreamResponse:
        return await self._single(request, "identify")

    async def batch(self, request: web.Request) -> web.StreamResponse:
        self._require_key(request)
        doc = _parse_json(await read_body(request, self._batch_limit, self._body_timeout))
        events = doc.get("batch") if isinstance(doc, dict) else None
        if not isinstance(events, list):
            raise HttpError(400, "invalid_batch", 'expected a JSON object with a "batch" array of events')
        try:
            shared = batch_level(doc)
        except BatchLevelError as exc:
            raise HttpError(400, exc.code, exc.reason) from None
        if shared:
            events = [with_batch_level(event, shared) for event in events]
        # Libraries stamp sentAt on the batch, not on each event: it corrects their originalTimestamps.
        sent_at = doc.get("sentAt")
        return await self._many(events, sent_at if isinstance(sent_at, str) else None)

    async def webhook(self, request: web.Request) -> web.StreamResponse:
        key_ok = self._auth.check_key(request.headers.get(hdrs.AUTHORIZATION))
        signature = request.headers.get(SIGNATURE_HEADER)
        # Refused before a byte of the body is read (or hashed) unless a signature could possibly be valid.
        if not key_ok and not self._auth.could_be_signature(signature):
            raise unauthorized()
        body = await read_body(request, WEBHOOK_LIMIT, self._body_timeout)
        if not key_ok and not self._auth.check_signature(body, signature):
            raise unauthorized()
        doc = await parse_large_array(body)
        if doc is None:
            doc = _parse_json(body)
        if isinstance(doc, dict):
            events = [doc]
        elif isinstance(doc, list):
            events = doc
        else:
            raise HttpError(400, "invalid_batch", "expected an event object or a JSON array of events")
        return await self._many(events)

    async def _single(self, request: web.Request, event_type: str) -> web.StreamResponse:
        self._require_key(request)
        event = _parse_json(await read_body(request, SINGLE_EVENT_LIMIT, self._body_timeout))
        if isinstance(event, dict):
            given = event.get("type")
            if given is None:
                event["type"] = event_type
            elif given != event_type:
                raise HttpError(
                    400, "invalid_type", f'/v1/{event_type} takes "{event_type}" events, not type {repr(given)[:40]}'
                )
        result = await self._accept([event])
        if result.rejected:
            first = result.results[0]
            return error_response(400, first["code"], first["reason"])
        payload: dict[str, Any] = {"success": True}
        if result.results:  # accepted, but some mapping refused it: say which
            payload["results"] = result.results
        elif result.unmatched:
            payload["unmatched"] = True
        elif result.opted_out:
            payload["opted_out"] = True
        return json_response(200, payload)

    async def _many(self, events: list[Any], sent_at: str | None = None) -> web.StreamResponse:
        result = await self._accept(events, sent_at)
        payload: dict[str, Any] = {"success": True, "accepted": result.accepted, "rejected": result.rejected}
        if result.unmatched:
            payload["unmatched"] = result.unmatched
        if result.opted_out:
            payload["opted_out"] = result.opted_out
        if result.results:
            payload["results"] = result.results
        return json_response(200, payload)

    async def _accept(self, events: list[Any], sent_at: str | None = None) -> IntakeResult:
        if len(events) > self._max_events:
            raise HttpError(413, "too_many_events", f"{len(events):,} events in one request is over the limit of "
                                                    f"{self._max_events:,}; send them in several requests")
        result = IntakeResult()
        try:
            for start in range(0, len(events), ROUTE_SLICE):
                if start:
                    await asyncio.sleep(0)  # let other connections (and /healthz) in between slices
                part = events if len(events) <= ROUTE_SLICE else events[start:start + ROUTE_SLICE]
                result.merge(await self._intake.accept_async(part, sent_at=sent_at), start)
        except BacklogFull as exc:
            self._metrics.record(result)
            done = result.accepted + result.rejected
            stored = f"the events from index {done:,} on were not stored" if done else "the events were not stored"
            raise HttpError(503, "backlog_full", f"{exc}; {stored}",
                            {"Retry-After": str(exc.retry_after)}) from None
        except StoreUnavailable as exc:
            self._metrics.record(result)
            self._warn_store(exc)
            if is_out_of_memory(exc):
                raise HttpError(503, "store_out_of_memory", "the event store (Redis) is out of memory: the events "
                                "were not stored; retry later", {"Retry-After": str(exc.retry_after)}) from None
            raise HttpError(503, "store_unavailable", "the event store (Redis) is unavailable: the events may not "
                            "have been stored; retry", {"Retry-After": str(exc.retry_after)}) from None
        self._metrics.record(result)
        return result

    def _warn_store(self, exc: StoreUnavailable) -> None:
        # Once a second at most: while Redis is down every request fails the same way.
        now = time.monotonic()
        if now - self._last_store_warning >= 1.0:
            self._last_store_warning = now
            log.warning("event store unavailable", error=type(exc.__cause__ or exc).__name__,
                        out_of_memory=is_out_of_memory(exc))

    def _require_key(self, request: web.Request) -> None:
        if not self._auth.check_key(request.headers.get(hdrs.AUTHORIZATION)):
            raise unauthorized()


def unauthorized() -> HttpError:
    return HttpError(401, "unauthorized", "a valid write key is required",
                     {"WWW-Authenticate": 'Basic realm="tiktok-audiences"'})


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "invalid_json", f"invalid JSON: {exc}") from None
