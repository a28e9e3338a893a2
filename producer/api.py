"""The Python API: push events from your own code through the same intake as HTTP and ``ingest``.

    from producer.api import enqueue_events
    result = enqueue_events([{"type": "track", "event": "Audience Entered", ...}])
    for r in result.results:  # rejected events, with their index and reason
        ...

Events are written in chunks (one Redis round trip each). :class:`~producer.intake.BacklogFull` and
:class:`~producer.intake.StoreUnavailable` propagate; when they interrupt a long iterable, the events of the
earlier chunks are stored, and the exception's ``partial`` attribute holds their :class:`IntakeResult`.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import TYPE_CHECKING, Any

import redis as redis_lib

from core.settings import Settings, get_settings
from producer.intake import IntakeError, IntakeResult, SyncIntake

if TYPE_CHECKING:
    from producer.routing import Router

CHUNK = 1000

# The intake built from default settings, kept for the next call: compiling the destinations file and opening
# a connection pool per call would cost more than enqueueing a few events.
_default: tuple[Settings, Router, redis_lib.Redis] | None = None


def enqueue_events(events: Iterable[dict[str, Any]], *, settings: Settings | None = None,
                   router: Router | None = None, redis: redis_lib.Redis | None = None,
                   chunk: int = CHUNK) -> IntakeResult:
    """Validate, route and enqueue ``events``; returns what was accepted and why the others were rejected.

    Defaults: ``settings`` from the environment, ``router`` compiled from ``settings.config_path``, ``redis``
    a client for ``settings.redis_url``."""
    settings = settings or get_settings()
    if router is None or redis is None:
        default_router, default_redis = _defaults(settings)
        router = router or default_router
        redis = redis or default_redis
    intake = SyncIntake(router, redis, settings)
    total = IntakeResult()
    iterator = iter(events)
    offset = 0
    while part := list(islice(iterator, chunk)):
        try:
            result = intake.accept(part)
        except IntakeError as exc:
            exc.partial = total
            raise
        total.merge(result, offset)
        offset += len(part)
    return total


def _defaults(settings: Settings) -> tuple[Router, redis_lib.Redis]:
    global _default
    if _default is None or _default[0] is not settings:
        from core.destinations import load_destinations
        from core.redis_client import INTAKE, redis_from_url
        from producer.routing import Router

        router = Router.from_destinations(load_destinations(settings.config_path),
                                          default_phone_country=settings.default_phone_country)
        _default = (settings, router, redis_from_url(settings.redis_url, INTAKE))
    return _default[1], _default[2]
