"""HTTP intake: Segment's tracking API shape on aiohttp, in front of :class:`producer.intake.Intake`.

Routes: ``POST /v1/track``, ``/v1/identify``, ``/v1/batch``, ``/v1/webhook``; ``GET /healthz``, ``/readyz``,
``/metrics``. Answers follow Segment's (``{"success": true}``); a 200 always means the events are stored in
Redis, and while they cannot be stored the answer is 503, so senders retry instead of losing events.

Every error answer is ``{"success": false, "code": "<snake_case>", "message": "..."}``: Segment's and
RudderStack's Python libraries read ``code`` and ``message`` from it (RudderStack's turns any other shape into
a KeyError that it retries and then drops).

Hostile clients are refused precisely and cheaply: a webhook with neither a write key nor a signature is
refused before its body is read; a body that does not arrive within ``TTA_BODY_TIMEOUT`` is 408; an unknown
``Content-Encoding`` is 415 and a body that is not the gzip/deflate it claims is 400; JSON nested deeper than
:data:`MAX_DEPTH` where we merge it is 400; a request of more than ``TTA_MAX_REQUEST_EVENTS`` events is 413; a
large request is parsed (:func:`producer.bodies.parse_large_array`) and routed in slices that yield to the
event loop, so ``/healthz`` and other requests are answered meanwhile. No answer repeats a header's value. A
client that hangs up mid-request is logged at debug and counted with status 499, not as a failure of ours
(:mod:`producer.protocol` covers what happens before a request reaches a handler).

The request path stays thin (one orjson parse, one intake call, a few counter increments) because the
per-event cost of routing is the budget; there is no access log and at most one debug line per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import hdrs, web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from core.heap import settle_heap
from core.redis_memory import is_out_of_memory, memory_state
from core.settings import Settings
from producer.auth import SIGNATURE_HEADER, Authenticator
from producer.bodies import MAX_DEPTH, PARSE_PIECE, BodyRefused, depth_exceeds, parse_large_array, read_body
from producer.gc_pause import CollectorPause
from producer.intake import BacklogFull, Intake, IntakeResult, StoreUnavailable
from producer.limits import NewAudienceGate, teaching_known_audiences
from producer.protocol import serve_until_stopped
from worker.readiness import check_write_path_async

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from producer.routing import Router

SINGLE_EVENT_LIMIT = 32 * 1024
WEBHOOK_LIMIT = 16 * 1024 * 1024
# A request with more events than this is routed in slices of this many, yielding to the event loop between
# them: ~30 ms of routing at a time, so one large webhook never stalls the other connections.
ROUTE_SLICE = 2_000
# Counted in the requests metric for a client that hung up before its answer (nginx's convention).
CLIENT_CLOSED = 499

log = structlog.get_logger("producer.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StartupError(Exception):
    """``serve`` cannot start; the message says what to set."""


class _HttpError(Exception):
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
    return _json(status, {"success": False, "code": code, "message": message}, headers)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json",
                        headers=headers)


def _metrics_shared_between_processes() -> bool:
    """Whether metrics live in prometheus_client's multiprocess files (``serve --workers N``, or a
    ``PROMETHEUS_MULTIPROC_DIR`` set before start) rather than in this process's memory."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def share_metrics_between_processes() -> Callable[[], None]:
    """Make the metrics of processes forked from now on add up, whichever process a scrape reaches: each
    writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary folder unless that is set)
    and ``/metrics`` reads them all. Returns the cleanup to run when every process has exited."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    made: str | None = None
    if not directory:
        made = directory = tempfile.mkdtemp(prefix="tta-intake-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    # prometheus_client picks its value class from the environment when it is first imported, which was
    # before this function could set it; metrics read the class when they are made (after the fork).
    values.ValueClass = values.MultiProcessValue()

    def cleanup() -> None:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)

    return cleanup


class IntakeMetrics:
    """Prometheus metrics of the intake: in memory for one process; with several (``serve --workers N``),
    in shared files so that every process answers ``/metrics`` with the sum over all of them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._shared = _metrics_shared_between_processes()
        self.events_accepted = Counter("tta_intake_events_accepted", "Events accepted by intake",
                                       registry=self.registry)
        self.events_rejected = Counter("tta_intake_events_rejected", "Events rejected by intake, by reason",
                                       ["reason"], registry=self.registry)
        self.requests = Counter("tta_intake_requests", "Intake HTTP requests, by route and status (probes and "
                                "scrapes are not counted)", ["route", "status"], registry=self.registry)
        self.duration = Histogram("tta_intake_request_duration_seconds", "Time to answer an intake request, "
                                  "by route", ["route"], registry=self.registry,
                                  buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
        if not self._shared:
            ProcessCollector(registry=self.registry)  # with shared files, render() adds the answering one's
        self.operations = Counter("tta_intake_operations_enqueued", "Operations written to the queue",
                                  registry=self.registry)
        self.unmatched = Counter("tta_intake_events_unmatched", "Accepted events no mapping subscribed to",
                                 registry=self.registry)
        self.opted_out = Counter("tta_intake_events_opted_out",
                                 "Accepted events whose integrations turned a destination off", registry=self.registry)
        self.clamped = Counter("tta_intake_event_times_clamped",
                               "Event times too far in the future, clamped to the time received",
                               registry=self.registry)
        # Set from Redis just before each scrape, by whichever process answers it: the latest value is the truth.
        self.backlog = Gauge("tta_backlog_operations", "Operations accepted and not yet settled (fleet-wide)",
                             registry=self.registry, multiprocess_mode="mostrecent")
        # labels() takes a lock and builds a key on every call; the set of (route, status) pairs is small.
        self._request_children: dict[tuple[str, int], Any] = {}
        self._duration_children: dict[str, Any] = {}

    def request(self, route: str, status: int, seconds: float) -> None:
        child = self._request_children.get((route, status))
        if child is None:
            child = self._request_children[(route, status)] = self.requests.labels(route, str(status))
        child.inc()
        timer = self._duration_children.get(route)
        if timer is None:
            timer = self._duration_children[route] = self.duration.labels(route)
        timer.observe(seconds)

    def record(self, result: IntakeResult) -> None:
        if result.accepted:
            self.events_accepted.inc(result.accepted)
        for code, n in result.rejected_by_code.items():
            self.events_rejected.labels(code).inc(n)
        if result.operations:
            self.operations.inc(result.operations)
        if result.unmatched:
            self.unmatched.inc(result.unmatched)
        if result.opted_out:
            self.opted_out.inc(result.opted_out)
        if result.clamped:
            self.clamped.inc(result.clamped)

    def render(self) -> bytes:
        if not self._shared:
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone)
        ProcessCollector(registry=everyone)
        return generate_latest(everyone)


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


METRICS_KEY = web.AppKey("metrics", IntakeMetrics)
INTAKE_KEY = web.AppKey("intake", Intake)


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _HttpError(400, "invalid_json", f"invalid JSON: {exc}") from None


# Objects a /v1/batch body may carry beside "batch", applying to every event in it (Segment's HTTP API).
BATCH_LEVEL_KEYS = ("context", "integrations")


def _batch_level(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    shared: dict[str, dict[str, Any]] = {}
    for key in BATCH_LEVEL_KEYS:
        value = doc.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise _HttpError(400, "invalid_field", f'the batch-level "{key}" must be an object')
        if depth_exceeds(value, MAX_DEPTH):
            raise _HttpError(400, "too_deep", f'the batch-level "{key}" is nested deeper than {MAX_DEPTH} levels')
        if value:
            shared[key] = value
    return shared


def with_batch_level(event: Any, shared: dict[str, dict[str, Any]]) -> Any:
    """``event`` with the batch-level ``context`` and ``integrations`` merged in: key by key, recursively
    through objects, the event's own values winning. An event that is not an object, or whose own value is
    not one, is left as it is for validation to refuse or keep."""
    if not isinstance(event, dict):
        return event
    merged = dict(event)
    for key, defaults in shared.items():
        own = event.get(key)
        if own is None:
            merged[key] = defaults
        elif isinstance(own, dict):
            merged[key] = _merge(defaults, own)
    return merged


def _merge(defaults: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in own.items():
        base = out.get(key)
        out[key] = _merge(base, value) if isinstance(base, dict) and isinstance(value, dict) else value
    return out


class _Routes:
    def __init__(self, intake: Intake, auth: Authenticator, metrics: IntakeMetrics, settings: Settings, *,
                 debug: bool, store: aioredis.Redis | None = None) -> None:
        self._intake = intake
        self._batch_limit = settings.max_batch_bytes
        self._store = store
        self._auth = auth
        self._metrics = metrics
        self._debug = debug
        self._body_timeout = settings.body_timeout
        self._max_events = settings.max_request_events
        self._last_store_warning = 0.0

    def counted(self, route: str, handler: Handler, *, count: bool = True) -> Handler:
        """Wrap a handler: errors become JSON answers, and (with ``count``: not probes or scrapes, which are
        not traffic) every answer is counted and timed by route and status."""
        metrics = self._metrics

        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except _HttpError as exc:
                response = exc.response()
            except BodyRefused as exc:
                response = error_response(exc.status, exc.code, str(exc))
            except ConnectionError:
                # The client hung up (mid-body, say): nothing to answer and nothing wrong on our side.
                log.debug("client disconnected", route=route)
                if count:
                    metrics.request(route, CLIENT_CLOSED, time.perf_counter() - started)
                return web.Response(status=CLIENT_CLOSED)  # nobody reads it; aiohttp drops it quietly
            except Exception as exc:
                # Frames only, no locals or message: either could hold an identifier from the body.
                log.error("request failed", route=route, error=type(exc).__name__,
                          where="".join(traceback.format_tb(exc.__traceback__)[-3:]))
                response = error_response(500, "internal_error", "internal error")
            if count:
                metrics.request(route, response.status, time.perf_counter() - started)
            if self._debug:
                log.debug("request", route=route, status=response.status)
            return response

        return handle

    # -- event routes ----------------------------------------------------------------------------------------

    async def track(self, request: web.Request) -> web.StreamResponse:
        return await self._single(request, "track")

    async def identify(self, request: web.Request) -> web.StreamResponse:
        return await self._single(request, "identify")

    async def batch(self, request: web.Request) -> web.StreamResponse:
        self._require_key(request)
        doc = _parse_json(await read_body(request, self._batch_limit, self._body_timeout))
        events = doc.get("batch") if isinstance(doc, dict) else None
        if not isinstance(events, list):
            raise _HttpError(400, "invalid_batch", 'expected a JSON object with a "batch" array of events')
        shared = _batch_level(doc)
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
            raise self._unauthorized()
        body = await read_body(request, WEBHOOK_LIMIT, self._body_timeout)
        if not key_ok and not self._auth.check_signature(body, signature):
            raise self._unauthorized()
        doc = await parse_large_array(body)
        if doc is None:
            doc = _parse_json(body)
        if isinstance(doc, dict):
            events = [doc]
        elif isinstance(doc, list):
            events = doc
        else:
            raise _HttpError(400, "invalid_batch", "expected an event object or a JSON array of events")
        return await self._many(events)

    async def _single(self, request: web.Request, event_type: str) -> web.StreamResponse:
        self._require_key(request)
        event = _parse_json(await read_body(request, SINGLE_EVENT_LIMIT, self._body_timeout))
        if isinstance(event, dict):
            given = event.get("type")
            if given is None:
                event["type"] = event_type
            elif given != event_type:
                raise _HttpError(
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
        return _json(200, payload)

    async def _many(self, events: list[Any], sent_at: str | None = None) -> web.StreamResponse:
        result = await self._accept(events, sent_at)
        payload: dict[str, Any] = {"success": True, "accepted": result.accepted, "rejected": result.rejected}
        if result.unmatched:
            payload["unmatched"] = result.unmatched
        if result.opted_out:
            payload["opted_out"] = result.opted_out
        if result.results:
            payload["results"] = result.results
        return _json(200, payload)

    async def _accept(self, events: list[Any], sent_at: str | None = None) -> IntakeResult:
        if len(events) > self._max_events:
            raise _HttpError(413, "too_many_events", f"{len(events):,} events in one request is over the limit of "
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
            raise _HttpError(503, "backlog_full", f"{exc}; {stored}",
                             {"Retry-After": str(exc.retry_after)}) from None
        except StoreUnavailable as exc:
            self._metrics.record(result)
            self._warn_store(exc)
            if is_out_of_memory(exc):
                raise _HttpError(503, "store_out_of_memory", "the event store (Redis) is out of memory: the events "
                                 "were not stored; retry later", {"Retry-After": str(exc.retry_after)}) from None
            raise _HttpError(503, "store_unavailable", "the event store (Redis) is unavailable: the events may not "
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
            raise self._unauthorized()

    @staticmethod
    def _unauthorized() -> _HttpError:
        return _HttpError(401, "unauthorized", "a valid write key is required",
                          {"WWW-Authenticate": 'Basic realm="tiktok-audiences"'})

    # -- operations routes -----------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return _json(200, {"ok": True})

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        if not await self._intake.ready_async():
            return _json(503, {"ready": False, "success": False, "code": "store_unavailable",
                               "message": "Redis does not answer"})
        # Answering is not enough: a replica, a Cluster node or a Redis out of memory answers PING and refuses
        # every write (worker.readiness).
        store = self._store if self._store is not None else self._intake._async_client()
        try:
            problem = await asyncio.wait_for(check_write_path_async(store), 2.0)
        except (TimeoutError, OSError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None and problem.startswith("OutOfMemoryError"):
            return _json(503, {"ready": False, "success": False, "code": "store_out_of_memory",
                               "message": await self._memory_described(store)})
        if problem is not None:
            return _json(503, {"ready": False, "success": False, "code": "store_refuses_writes",
                               "message": f"Redis refuses writes: {problem}"})
        return _json(200, {"ready": True})

    @staticmethod
    async def _memory_described(store: aioredis.Redis) -> str:
        try:
            return memory_state(await asyncio.wait_for(store.info("memory"), 2.0)).describe()
        except Exception:  # INFO refused or slow: the code says it all the same
            return "Redis is out of memory: it refuses writes (maxmemory reached)"

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        # On failure keep the last known value; /readyz reports the outage.
        with contextlib.suppress(StoreUnavailable):
            self._metrics.backlog.set(await self._intake.backlog_async())
        return web.Response(body=self._metrics.render(), headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})


def _large_body(request: web.Request) -> bool:
    """Whether a body may be large enough to parse in pieces (producer.gc_pause says why that matters)."""
    return request.content_length is None or request.content_length > PARSE_PIECE


def build_app(intake: Intake, settings: Settings, *, no_auth: bool = False,
              metrics: IntakeMetrics | None = None, store: aioredis.Redis | None = None) -> web.Application:
    """The intake application around ``intake`` (whose client must be a ``redis.asyncio`` one; ``store``, the
    same client, for the readiness probe)."""
    metrics = metrics or IntakeMetrics()
    routes = _Routes(intake, Authenticator.from_settings(settings, no_auth=no_auth), metrics, settings,
                     debug=settings.log_level.lower() == "debug", store=store)
    # Bodies are read by producer.bodies.read_body with per-route limits; this only bounds aiohttp's own readers.
    app = web.Application(client_max_size=max(WEBHOOK_LIMIT, settings.max_batch_bytes),
                          middlewares=[json_errors])
    app[METRICS_KEY] = metrics
    app[INTAKE_KEY] = intake
    pause = CollectorPause()
    webhook = pause.around(routes.webhook, _large_body)
    for path, handler in (("/v1/track", routes.track), ("/v1/identify", routes.identify),
                          ("/v1/batch", routes.batch), ("/v1/webhook", webhook)):
        app.router.add_post(path, routes.counted(path, handler))
    for path, handler in (("/healthz", routes.healthz), ("/readyz", routes.readyz),
                          ("/metrics", routes.metrics)):
        app.router.add_get(path, routes.counted(path, handler, count=False))
    return app


# -- running -------------------------------------------------------------------------------------------------


def check_startup(settings: Settings, *, no_auth: bool) -> None:
    """Refuse to serve an open intake by accident."""
    if no_auth:
        return
    if not Authenticator.from_settings(settings).configured:
        raise StartupError(
            "refusing to start without authentication: set TTA_WRITE_KEY (comma-separated write keys) "
            "and/or TTA_WEBHOOK_SECRET, or pass --no-auth to accept unauthenticated events"
        )


def ensure_port_free(host: str, port: int) -> None:
    """Raise StartupError when something already listens on ``host:port``.

    Needed because ``--workers N`` binds with ``SO_REUSEPORT``: a server left running on the port (an earlier
    intake that was never stopped) would silently share it, and answer half the requests with its own keys."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another intake "
                               "still running there? stop it or choose another --port)") from None


def serve(host: str, port: int, settings: Settings, *, no_auth: bool = False, workers: int = 1) -> int:
    """Run the intake until stopped; returns an exit code. With ``workers > 1`` that many processes share the
    port (``SO_REUSEPORT``) so intake uses every core: routing is CPU-bound Python, one process is one core.

    Refuses to start (message on stderr, exit code 2) without authentication configured or with a destinations
    file it cannot use."""
    from core.destinations import ConfigError, load_destinations
    from producer.routing import Router

    try:
        check_startup(settings, no_auth=no_auth)
        ensure_port_free(host, port)
        router = Router.from_destinations(load_destinations(settings.config_path),
                                          default_phone_country=settings.default_phone_country)
        if settings.new_audiences_per_minute:
            router.audience_gate = NewAudienceGate(settings.new_audiences_per_minute)
    except (StartupError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # The compiled router is long-lived: keep the collector from rescanning it, and keep its pages shared
    # between forked processes instead of copied by the collector's writes; collect young objects rarely
    # (core.heap says why).
    settle_heap()

    def run(reuse_port: bool) -> None:
        asyncio.run(_serve(router, settings, no_auth, host, port, reuse_port))

    if workers <= 1:
        log.info("intake serving", host=host, port=port, workers=1, auth=not no_auth)
        run(reuse_port=False)
        return 0
    log.info("intake serving", host=host, port=port, workers=workers, auth=not no_auth)
    cleanup = share_metrics_between_processes()
    try:
        return _run_forked(workers, lambda: run(reuse_port=True))
    finally:
        cleanup()


async def _serve(router: Router, settings: Settings, no_auth: bool, host: str, port: int,
                 reuse_port: bool) -> None:
    """Serve until SIGTERM or SIGINT, with the connection guards of :mod:`producer.protocol`."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await serve_until_stopped(await _make_app(router, settings, no_auth), host, port, reuse_port=reuse_port,
                              header_timeout=settings.header_timeout,
                              keepalive_timeout=settings.keepalive_timeout, stopped=stopped)


async def _make_app(router: Router, settings: Settings, no_auth: bool) -> web.Application:
    # Built inside the server's event loop, after any fork: a Redis connection pool must not cross either.
    from core.redis_client import INTAKE, async_redis_from_url

    client = async_redis_from_url(settings.redis_url, INTAKE)
    app = build_app(Intake(router, client, settings), settings, no_auth=no_auth, store=client)

    async def close_client(_: web.Application) -> None:
        await client.aclose()

    app.on_cleanup.append(close_client)
    if router.audience_gate is not None:
        app.cleanup_ctx.append(teaching_known_audiences(router.audience_gate, client))
    return app


def _run_forked(workers: int, run: Callable[[], None]) -> int:
    """Fork ``workers`` children running ``run``; stop them all on SIGTERM/SIGINT or when one fails."""
    children: set[int] = set()
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                run()
            except BaseException as exc:  # the child must never fall back into the parent's code
                log.error("intake process failed", error=f"{type(exc).__name__}: {exc}")
                code = 1
            finally:
                os._exit(code)
        children.add(pid)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exit_code = 0
    while children:
        pid, status = os.wait()
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not stopping:
            exit_code = code if code > 0 else 1
            stop()
    return exit_code

