"""Intake's operations endpoints: readiness proves Redis takes writes; metrics time requests and leave probes
and scrapes out of the traffic counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import orjson
import pytest
import pytest_asyncio
import redis
from aiohttp.test_utils import TestClient, TestServer

from producer.http import build_app
from producer.intake import Intake
from tests.support.intake import entered, router, settings

pytestmark = pytest.mark.asyncio


class AsyncReplica(fakeredis.aioredis.FakeRedis):
    """Answers PING and reads, refuses writes: a replica, as a misconfigured REDIS_URL may point at."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args and str(args[0]).upper() in ("EVAL", "EVALSHA"):
            raise redis.exceptions.ReadOnlyError("You can't write against a read only replica.")
        return await super().execute_command(*args, **options)


@pytest_asyncio.fixture
async def clients() -> AsyncIterator[list[TestClient[Any, Any]]]:
    made: list[TestClient[Any, Any]] = []
    yield made
    for client in made:
        await client.close()


async def start(clients: list[TestClient[Any, Any]], store: Any) -> TestClient[Any, Any]:
    conf = settings()
    client = TestClient(TestServer(build_app(Intake(router(), store, conf), conf, no_auth=True, store=store)))
    await client.start_server()
    clients.append(client)
    return client


async def test_a_redis_that_answers_but_refuses_writes_is_not_ready(clients: list[Any]) -> None:
    client = await start(clients, AsyncReplica())
    assert (await client.get("/healthz")).status == 200  # liveness never asks Redis
    answer = await client.get("/readyz")
    assert answer.status == 503
    body = await answer.json()
    assert body["ready"] is False and "read only replica" in body["message"] and body["code"] == "store_refuses_writes"


async def test_a_writable_redis_is_ready(clients: list[Any]) -> None:
    client = await start(clients, fakeredis.aioredis.FakeRedis())
    answer = await client.get("/readyz")
    assert answer.status == 200 and await answer.json() == {"ready": True}


async def test_probes_and_scrapes_are_not_traffic_and_requests_are_timed(clients: list[Any]) -> None:
    client = await start(clients, fakeredis.aioredis.FakeRedis())
    for path in ("/healthz", "/readyz", "/metrics"):
        await client.get(path)
    await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()]}))
    text = await (await client.get("/metrics")).text()
    assert 'route="/healthz"' not in text and 'route="/readyz"' not in text and 'route="/metrics"' not in text
    assert 'tta_intake_requests_total{route="/v1/batch",status="200"} 1.0' in text
    assert 'tta_intake_request_duration_seconds_count{route="/v1/batch"} 1.0' in text
    assert "process_resident_memory_bytes" in text
