"""Support for the HTTP intake's tests: the intake app served as ``serve`` serves it (with the connection
guards of :mod:`producer.http.connections`) over a fake Redis, the write key and webhook secret it accepts,
and a raw socket exchange for requests no client library would send."""

from __future__ import annotations

import asyncio
import base64
from types import TracebackType
from typing import Any

import fakeredis
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer
from redis.exceptions import OutOfMemoryError

from producer.http import build_app
from producer.http.connections import GuardedAppRunner
from producer.intake import AsyncIntake
from tests.support.intake import AsyncDownPipeline, router, settings
from worker import keys

KEY = "test-write-key"
SECRET = "test-webhook-secret"


def basic_auth(key: str) -> str:
    """Segment's convention: the write key as the Basic user name, with an empty password."""
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode()


AUTH = {"Authorization": basic_auth(KEY)}


class GuardedTestServer(TestServer):
    """aiohttp's test server with the intake's connection guards, as ``serve`` runs them."""

    def __init__(self, app: web.Application, *, header_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout = header_timeout

    async def _make_runner(self, **kwargs: Any) -> GuardedAppRunner:
        # As serve runs: a handler is not cancelled when its client hangs up (it sees the disconnect).
        kwargs["handler_cancellation"] = False
        return GuardedAppRunner(self.app, header_timeout=self._header_timeout, **kwargs)


class IntakeServers:
    """Intake apps on test servers, all writing to one fake Redis, closed together.

    ``store`` is a synchronous view of that Redis, for assertions about what was stored."""

    def __init__(self) -> None:
        self.redis = fakeredis.FakeServer()
        self.store = fakeredis.FakeRedis(server=self.redis)
        self._clients: list[TestClient[Any, Any]] = []

    async def client(self, redis_client: Any = None, *, no_auth: bool = False, header_timeout: float = 10.0,
                     **overrides: Any) -> TestClient[Any, Any]:
        """A client of a fresh intake app taking :data:`KEY` and :data:`SECRET` (or no authentication), over
        ``redis_client`` (by default one on the shared fake Redis); ``overrides`` are settings."""
        client = TestClient(GuardedTestServer(self.app(redis_client, no_auth=no_auth, **overrides),
                                              header_timeout=header_timeout))
        await client.start_server()
        self._clients.append(client)
        return client

    def app(self, redis_client: Any = None, *, no_auth: bool = False, **overrides: Any) -> web.Application:
        conf = settings(write_keys=KEY, webhook_secret=SECRET, **overrides)
        redis_client = redis_client or fakeredis.aioredis.FakeRedis(server=self.redis)
        return build_app(AsyncIntake(router(), redis_client, conf), conf, no_auth=no_auth, store=redis_client)

    def backlog(self) -> int:
        """Operations stored and not yet settled."""
        return int(self.store.get(keys.BACKLOG) or 0)

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients.clear()

    async def __aenter__(self) -> IntakeServers:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


OUT_OF_MEMORY = "command not allowed when used memory > 'maxmemory'."


class _OutOfMemoryPipeline(AsyncDownPipeline):
    async def execute(self) -> Any:
        raise OutOfMemoryError(OUT_OF_MEMORY)


class FullRedis(fakeredis.aioredis.FakeRedis):
    """Redis at maxmemory (noeviction): PING and INFO answer, every write is refused."""

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return _OutOfMemoryPipeline()

    async def eval(self, *args: Any, **kwargs: Any) -> Any:
        raise OutOfMemoryError(OUT_OF_MEMORY)

    async def info(self, *args: Any, **kwargs: Any) -> Any:
        return {"used_memory": 41_000_000, "maxmemory": 40_000_000, "maxmemory_policy": "noeviction"}


async def raw_exchange(test_server: BaseTestServer, data: bytes, *, then_wait: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and return what the server answers: everything until it closes
    the connection or falls silent after answering; ``b"<no answer>"`` when nothing came in ``then_wait``
    seconds and the connection is still open."""
    assert test_server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", test_server.port)
    writer.write(data)
    await writer.drain()
    received = b""
    try:
        chunk = await asyncio.wait_for(reader.read(65536), then_wait)
        while chunk:
            received += chunk
            chunk = await asyncio.wait_for(reader.read(65536), 0.5)
    except (TimeoutError, ConnectionResetError):
        pass
    finally:
        writer.close()
    return received if received or reader.at_eof() else b"<no answer>"
