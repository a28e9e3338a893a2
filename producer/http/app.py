"""The intake's aiohttp application: its routes, and the wrapper every handler runs in (errors become JSON
answers, traffic is counted and timed).

A client that hangs up mid-request is logged at debug and counted with status 499, not as a failure of ours.
There is no access log and at most one debug line per request: a log line costs as much as storing an event.
"""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from core.settings import Settings
from producer.http.answers import Handler, HttpError, error_response, json_errors
from producer.http.auth import Authenticator
from producer.http.bodies import PARSE_PIECE, BodyRefused
from producer.http.event_routes import WEBHOOK_LIMIT, EventRoutes
from producer.http.gc_pause import CollectorPause
from producer.http.metrics import IntakeMetrics
from producer.http.operations import OperationsRoutes
from producer.intake import AsyncIntake
from producer.limits import teaching_known_audiences

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from producer.routing import Router

# Counted in the requests metric for a client that hung up before its answer (nginx's convention).
CLIENT_CLOSED = 499

METRICS_KEY = web.AppKey("metrics", IntakeMetrics)
INTAKE_KEY = web.AppKey("intake", AsyncIntake)

log = structlog.get_logger("producer.http")


def build_app(intake: AsyncIntake, settings: Settings, *, no_auth: bool = False,
              metrics: IntakeMetrics | None = None, store: aioredis.Redis | None = None) -> web.Application:
    """The intake application around ``intake`` (whose client must be a ``redis.asyncio`` one; ``store``, the
    same client, for the readiness probe)."""
    metrics = metrics or IntakeMetrics()
    events = EventRoutes(intake, Authenticator.from_settings(settings, no_auth=no_auth), metrics, settings)
    operations = OperationsRoutes(intake, metrics, store)
    debug = settings.log_level.lower() == "debug"
    # Bodies are read by producer.http.bodies.read_body with per-route limits; this only bounds aiohttp's own readers.
    app = web.Application(client_max_size=max(WEBHOOK_LIMIT, settings.max_batch_bytes),
                          middlewares=[json_errors])
    app[METRICS_KEY] = metrics
    app[INTAKE_KEY] = intake
    pause = CollectorPause()
    webhook = pause.around(events.webhook, _large_body)
    for path, handler in (("/v1/track", events.track), ("/v1/identify", events.identify),
                          ("/v1/batch", events.batch), ("/v1/webhook", webhook)):
        app.router.add_post(path, answered(path, handler, metrics, debug=debug))
    for path, handler in (("/healthz", operations.healthz), ("/readyz", operations.readyz),
                          ("/metrics", operations.metrics)):
        app.router.add_get(path, answered(path, handler, metrics, debug=debug, count=False))
    return app


async def make_app(router: Router, settings: Settings, *, no_auth: bool = False) -> web.Application:
    """The application as ``serve`` runs it: with its own Redis client (closed with the app) and, when new
    audiences are rate-limited, the audiences already known taught to the gate.

    Call it inside the event loop that will serve, after any fork: a Redis connection pool must cross
    neither."""
    from core.redis_client import INTAKE, async_redis_from_url

    client = async_redis_from_url(settings.redis_url, INTAKE)
    app = build_app(AsyncIntake(router, client, settings), settings, no_auth=no_auth, store=client)

    async def close_client(_: web.Application) -> None:
        await client.aclose()

    app.on_cleanup.append(close_client)
    if router.audience_gate is not None:
        app.cleanup_ctx.append(teaching_known_audiences(router.audience_gate, client))
    return app


def answered(route: str, handler: Handler, metrics: IntakeMetrics, *, debug: bool,
             count: bool = True) -> Handler:
    """Wrap a handler: errors become JSON answers, and (with ``count``: not probes or scrapes, which are
    not traffic) every answer is counted and timed by route and status."""

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except HttpError as exc:
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
        if debug:
            log.debug("request", route=route, status=response.status)
        return response

    return handle


def _large_body(request: web.Request) -> bool:
    """Whether a body may be large enough to parse in pieces (producer.http.gc_pause says why that matters)."""
    return request.content_length is None or request.content_length > PARSE_PIECE
