"""The benchmark's sender: every body POSTed once over kept-alive connections, in order, 503s retried."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from benchmarks.client import SenderError, post_in_order

pytestmark = pytest.mark.asyncio


class Intake:
    """Answers like /v1/batch, and notes what it was sent."""

    def __init__(self, refuse_first: int = 0, status: int = 200) -> None:
        self.bodies: list[int] = []
        self.headers: list[dict[str, str]] = []
        self.peers: set[Any] = set()
        self.refuse_first = refuse_first
        self.status = status

    async def handle(self, request: web.Request) -> web.Response:
        doc = orjson.loads(await request.read())
        self.headers.append(dict(request.headers))
        self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        if self.refuse_first:
            self.refuse_first -= 1
            return web.Response(status=503, body=b'{"success":false}', headers={"Retry-After": "0"})
        if self.status != 200:
            return web.Response(status=self.status, body=b'{"success":false,"error":"no"}')
        self.bodies.append(doc["n"])
        await asyncio.sleep(0.001 * (doc["n"] % 3))  # answers out of order
        return web.json_response({"success": True, "accepted": len(doc["batch"]), "rejected": 0})


async def serve(intake: Intake) -> TestServer:
    app = web.Application()
    app.router.add_post("/v1/batch", intake.handle)
    server = TestServer(app)
    await server.start_server()
    return server


def bodies(count: int) -> list[bytes]:
    return [orjson.dumps({"n": n, "batch": [{}] * 3}) for n in range(count)]


async def test_every_body_is_sent_once_and_its_events_counted() -> None:
    intake = Intake()
    server = await serve(intake)
    try:
        accepted, retries = await post_in_order(str(server.make_url("")), "/v1/batch",
                                                {"Authorization": "Basic abc"}, bodies(50), connections=4,
                                                max_ahead=5)
    finally:
        await server.close()
    assert (accepted, retries) == (150, 0)
    assert sorted(intake.bodies) == list(range(50))
    assert len(intake.peers) == 4  # kept-alive connections, not one per request
    assert all(h["Authorization"] == "Basic abc" for h in intake.headers)


async def test_no_body_overtakes_one_more_than_max_ahead_places_before_it() -> None:
    intake = Intake()
    server = await serve(intake)
    try:
        await post_in_order(str(server.make_url("")), "/v1/batch", {}, bodies(60), connections=8, max_ahead=3)
    finally:
        await server.close()
    # A body is only sent once every body more than max_ahead places before it was answered.
    for position, n in enumerate(intake.bodies):
        assert all(earlier in intake.bodies[:position] for earlier in range(n - 3))


async def test_a_503_is_sent_again_after_its_retry_after() -> None:
    intake = Intake(refuse_first=2)
    server = await serve(intake)
    try:
        accepted, retries = await post_in_order(str(server.make_url("")), "/v1/batch", {}, bodies(5),
                                                connections=1, max_ahead=5)
    finally:
        await server.close()
    assert (accepted, retries) == (15, 2)
    assert intake.bodies == [0, 1, 2, 3, 4]


async def test_any_other_answer_stops_the_run() -> None:
    server = await serve(Intake(status=400))
    try:
        with pytest.raises(SenderError, match="intake answered 400"):
            await post_in_order(str(server.make_url("")), "/v1/batch", {}, bodies(2), connections=1,
                                max_ahead=5)
    finally:
        await server.close()
