"""The operations routes: ``GET /healthz`` (the process is up), ``/readyz`` (Redis takes writes) and
``/metrics`` (Prometheus text). They are not traffic: the request metrics leave them out."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST

from core.redis_memory import memory_state
from producer.http.answers import json_response
from producer.http.metrics import IntakeMetrics
from producer.intake import AsyncIntake, StoreUnavailable
from worker.readiness import check_write_path_async

if TYPE_CHECKING:
    import redis.asyncio as aioredis


class OperationsRoutes:
    """Liveness, readiness and the metrics scrape of one intake process."""

    def __init__(self, intake: AsyncIntake, metrics: IntakeMetrics, store: aioredis.Redis | None = None) -> None:
        self._intake = intake
        self._metrics = metrics
        self._store = store

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return json_response(200, {"ok": True})

    async def readyz(self, request: web.Request) -> web.StreamResponse:
        if not await self._intake.ready_async():
            return json_response(503, {"ready": False, "success": False, "code": "store_unavailable",
                                       "message": "Redis does not answer"})
        # Answering is not enough: a replica, a Cluster node or a Redis out of memory answers PING and refuses
        # every write (worker.readiness).
        store = self._store if self._store is not None else self._intake.client
        try:
            problem = await asyncio.wait_for(check_write_path_async(store), 2.0)
        except (TimeoutError, OSError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None and problem.startswith("OutOfMemoryError"):
            return json_response(503, {"ready": False, "success": False, "code": "store_out_of_memory",
                                       "message": await _memory_described(store)})
        if problem is not None:
            return json_response(503, {"ready": False, "success": False, "code": "store_refuses_writes",
                                       "message": f"Redis refuses writes: {problem}"})
        return json_response(200, {"ready": True})

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        # On failure keep the last known value; /readyz reports the outage.
        with contextlib.suppress(StoreUnavailable):
            self._metrics.backlog.set(await self._intake.backlog_async())
        return web.Response(body=self._metrics.render(), headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})


async def _memory_described(store: aioredis.Redis) -> str:
    try:
        return memory_state(await asyncio.wait_for(store.info("memory"), 2.0)).describe()
    except Exception:  # INFO refused or slow: the code says it all the same
        return "Redis is out of memory: it refuses writes (maxmemory reached)"
