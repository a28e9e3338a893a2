"""The operations routes: /healthz answers while the process is up, /readyz only while Redis takes writes,
and /metrics counts and times the traffic, leaving probes and scrapes out of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import orjson
import pytest
import pytest_asyncio
import redis

from tests.support.http import AUTH, FullRedis, IntakeServers
from tests.support.intake import AsyncDownRedis, entered

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def intake() -> AsyncIterator[IntakeServers]:
    async with IntakeServers() as servers:
        yield servers


class AsyncReplica(fakeredis.aioredis.FakeRedis):
    """Answers PING and reads, refuses writes: a replica, as a misconfigured REDIS_URL may point at."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args and str(args[0]).upper() in ("EVAL", "EVALSHA"):
            raise redis.exceptions.ReadOnlyError("You can't write against a read only replica.")
        return await super().execute_command(*args, **options)


# -- liveness and readiness --------------------------------------------------------------------------------


async def test_health_and_readiness(intake: IntakeServers) -> None:
    client = await intake.client()
    assert (await client.get("/healthz")).status == 200
    answer = await client.get("/readyz")
    assert answer.status == 200 and await answer.json() == {"ready": True}


async def test_not_ready_while_redis_is_down(intake: IntakeServers) -> None:
    client = await intake.client(AsyncDownRedis(server=intake.redis))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 503


async def test_a_redis_that_answers_but_refuses_writes_is_not_ready(intake: IntakeServers) -> None:
    client = await intake.client(AsyncReplica())
    assert (await client.get("/healthz")).status == 200  # liveness never asks Redis
    answer = await client.get("/readyz")
    assert answer.status == 503
    body = await answer.json()
    assert body["ready"] is False and "read only replica" in body["message"] and body["code"] == "store_refuses_writes"


async def test_readyz_names_a_full_redis(intake: IntakeServers) -> None:
    client = await intake.client(FullRedis())
    resp = await client.get("/readyz")
    assert resp.status == 503
    answer = await resp.json()
    assert answer["code"] == "store_out_of_memory"
    assert "41,000,000 bytes used of maxmemory 40,000,000" in answer["message"]


# -- metrics -----------------------------------------------------------------------------------------------


async def test_metrics_count_events_requests_and_backlog(intake: IntakeServers) -> None:
    client = await intake.client()
    await client.post("/v1/batch", data=orjson.dumps({"batch": [entered(), entered(None)]}), headers=AUTH)
    await client.post("/v1/track", data=b"{}")

    resp = await client.get("/metrics")

    text = await resp.text()
    assert resp.status == 200
    assert "tta_intake_events_accepted_total 1.0" in text
    assert 'tta_intake_events_rejected_total{reason="no_identifier"} 1.0' in text
    assert 'tta_intake_requests_total{route="/v1/batch",status="200"} 1.0' in text
    assert 'tta_intake_requests_total{route="/v1/track",status="401"} 1.0' in text
    assert "tta_intake_operations_enqueued_total 1.0" in text
    assert "tta_backlog_operations 1.0" in text


async def test_probes_and_scrapes_are_not_traffic_and_requests_are_timed(intake: IntakeServers) -> None:
    client = await intake.client(no_auth=True)
    for path in ("/healthz", "/readyz", "/metrics"):
        await client.get(path)
    await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()]}))
    text = await (await client.get("/metrics")).text()
    assert 'route="/healthz"' not in text and 'route="/readyz"' not in text and 'route="/metrics"' not in text
    assert 'tta_intake_requests_total{route="/v1/batch",status="200"} 1.0' in text
    assert 'tta_intake_request_duration_seconds_count{route="/v1/batch"} 1.0' in text
    assert "process_resident_memory_bytes" in text
