"""The TikTok client against an in-process HTTP server playing TikTok's canned answers."""

from __future__ import annotations

import asyncio
import socket
import traceback
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from worker.tiktok.client import Response, TikTokClient
from worker.tiktok.errors import (
    AuthError,
    PermanentError,
    ThrottledError,
    TikTokError,
    TransientError,
)
from worker.tiktok.wire import mapping_body

TOKEN = "tok-5ecret-9f8e7d6c5b4a"
SECRET = "app-secret-0a1b2c3d"
AUTH_CODE = "auth-code-77aa88bb"
ROWS = [{"EMAIL_SHA256": "a" * 64, "PHONE_SHA256": "b" * 64}, {"PHONE_SHA256": "c" * 64}]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


@dataclass(frozen=True)
class Seen:
    """One request as the fake TikTok received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def answer(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    """A handler that always gives the same answer; a dict or list body is sent as JSON."""
    raw = orjson.dumps(body) if isinstance(body, dict | list) else (body or b"")

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=raw, headers=headers, content_type="application/json")

    return handler


def envelope(code: int, message: str = "OK", request_id: str = "req-42", data: Any = None) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "request_id": request_id,
        "data": data if data is not None else {},
    }


@asynccontextmanager
async def fake_tiktok(
    handler: Handler, timeout: float = 5.0
) -> AsyncIterator[tuple[TikTokClient, list[Seen]]]:
    seen: list[Seen] = []

    async def recording(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recording)
    async with TestServer(app) as server, TikTokClient(str(server.make_url("/")), timeout=timeout) as client:
        yield client, seen


@asynccontextmanager
async def raw_server(reply: bytes) -> AsyncIterator[str]:
    """A socket server that reads the request head, writes ``reply`` (maybe nothing) and hangs up."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


async def mapping_error(client: TikTokClient) -> TikTokError:
    with pytest.raises(TikTokError) as info:
        await client.send_mapping(TOKEN, "adv", "add", "aud", ROWS)
    return info.value


def failing_mapping(handler: Handler, timeout: float = 5.0) -> TikTokError:
    async def scenario() -> TikTokError:
        async with fake_tiktok(handler, timeout) as (client, _):
            return await mapping_error(client)

    return run(scenario())


def assert_no_secret(error: BaseException, *secrets: str) -> None:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error)), repr(error.args)]
    for secret in secrets or (TOKEN,):
        for text in texts:
            assert secret not in text


# --- success ---------------------------------------------------------------------------------------------


def test_send_mapping_posts_the_spec_body_with_the_access_token_header() -> None:
    async def scenario() -> tuple[Response, list[Seen]]:
        async with fake_tiktok(answer(200, envelope(0, request_id="r-1"))) as (client, seen):
            return await client.send_mapping(TOKEN, "adv", "add", "aud", ROWS), seen

    response, seen = run(scenario())
    assert (response.code, response.message, response.request_id) == (0, "OK", "r-1")
    assert response.http_status == 200
    assert response.data == {}
    assert response.elapsed >= 0
    [request] = seen
    assert request.method == "POST"
    assert request.path == "/open_api/v1.3/segment/mapping/"
    assert request.headers["Access-Token"] == TOKEN  # TikTok's header, not Authorization: Bearer
    assert "Authorization" not in request.headers
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == mapping_body("adv", "add", "aud", ROWS)


def test_create_audience_returns_the_new_id() -> None:
    async def scenario() -> tuple[str, list[Seen]]:
        handler = answer(200, envelope(0, data={"audience_id": 7001234567}))
        async with fake_tiktok(handler) as (client, seen):
            return await client.create_audience(TOKEN, "adv", "n" * 80), seen

    audience_id, seen = run(scenario())
    assert audience_id == "7001234567"
    [request] = seen
    assert request.path == "/open_api/v1.3/segment/audience/"
    assert request.headers["Access-Token"] == TOKEN
    assert orjson.loads(request.body) == {
        "custom_audience_name": "n" * 67 + "...",
        "advertiser_id": "adv",
        "action": "create",
    }


def test_create_audience_success_without_an_id_is_permanent() -> None:
    # Retrying could create a second audience, so this must not look transient.
    async def scenario() -> TikTokError:
        async with fake_tiktok(answer(200, envelope(0, data={}))) as (client, _):
            with pytest.raises(TikTokError) as info:
                await client.create_audience(TOKEN, "adv", "name")
            return info.value

    assert isinstance(run(scenario()), PermanentError)


def test_get_audiences_sends_the_ids_as_a_json_list() -> None:
    audiences = [{"audience_id": "1", "name": "a"}, {"audience_id": "2", "name": "b"}]

    async def scenario() -> tuple[list[dict[str, Any]], list[Seen]]:
        async with fake_tiktok(answer(200, envelope(0, data={"list": audiences}))) as (client, seen):
            return await client.get_audiences(TOKEN, "adv", ["1", "2"]), seen

    result, seen = run(scenario())
    assert result == audiences
    [request] = seen
    assert request.method == "GET"
    assert request.path == "/open_api/v1.3/dmp/custom_audience/get/"
    assert request.query == {"advertiser_id": "adv", "custom_audience_ids": '["1","2"]'}
    assert request.headers["Access-Token"] == TOKEN


def test_list_audiences_pages() -> None:
    data = {"list": [{"audience_id": "1"}], "page_info": {"page": 2, "page_size": 50, "total_number": 51}}

    async def scenario() -> tuple[dict[str, Any], list[Seen]]:
        async with fake_tiktok(answer(200, envelope(0, data=data))) as (client, seen):
            return await client.list_audiences(TOKEN, "adv", page=2, page_size=50), seen

    result, seen = run(scenario())
    assert result == data
    [request] = seen
    assert request.path == "/open_api/v1.3/dmp/custom_audience/list/"
    assert request.query == {"advertiser_id": "adv", "page": "2", "page_size": "50"}


def test_user_info() -> None:
    async def scenario() -> tuple[dict[str, Any], list[Seen]]:
        handler = answer(200, envelope(0, data={"display_name": "ops", "id": "u1"}))
        async with fake_tiktok(handler) as (client, seen):
            return await client.user_info(TOKEN), seen

    result, seen = run(scenario())
    assert result == {"display_name": "ops", "id": "u1"}
    [request] = seen
    assert (request.method, request.path) == ("GET", "/open_api/v1.3/user/info/")
    assert request.headers["Access-Token"] == TOKEN


def test_exchange_auth_code() -> None:
    data = {"access_token": "new-token", "advertiser_ids": ["adv"], "scope": [4]}

    async def scenario() -> tuple[dict[str, Any], list[Seen]]:
        async with fake_tiktok(answer(200, envelope(0, data=data))) as (client, seen):
            return await client.exchange_auth_code("app", SECRET, AUTH_CODE), seen

    result, seen = run(scenario())
    assert result == data
    [request] = seen
    assert (request.method, request.path) == ("POST", "/open_api/v1.3/oauth2/access_token/")
    assert orjson.loads(request.body) == {"app_id": "app", "secret": SECRET, "auth_code": AUTH_CODE}
    assert "Access-Token" not in request.headers


def test_exchange_auth_code_errors_never_show_the_secret() -> None:
    async def scenario() -> TikTokError:
        handler = answer(200, envelope(40002, f"bad secret {SECRET} for code {AUTH_CODE}"))
        async with fake_tiktok(handler) as (client, _):
            with pytest.raises(TikTokError) as info:
                await client.exchange_auth_code("app", SECRET, AUTH_CODE)
            return info.value

    error = run(scenario())
    assert isinstance(error, PermanentError)
    assert_no_secret(error, SECRET, AUTH_CODE)


# --- TikTok's error answers ------------------------------------------------------------------------------


def test_200_with_code_40100_is_throttled() -> None:
    error = failing_mapping(answer(200, envelope(40100, "Too many requests", "r-thr")))
    assert isinstance(error, ThrottledError)
    assert (error.code, error.request_id, error.http_status) == (40100, "r-thr", 200)
    assert_no_secret(error)


def test_http_429_is_throttled_with_its_retry_after() -> None:
    error = failing_mapping(answer(429, b"", headers={"Retry-After": "7"}))
    assert isinstance(error, ThrottledError)
    assert error.http_status == 429
    assert error.retry_after == 7.0
    assert_no_secret(error)


def test_http_500_is_transient() -> None:
    error = failing_mapping(answer(500, b"<html>Internal Server Error</html>"))
    assert isinstance(error, TransientError)
    assert error.http_status == 500
    assert_no_secret(error)


def test_200_with_code_50002_is_transient() -> None:
    error = failing_mapping(answer(200, envelope(50002, "System error", "r-sys")))
    assert isinstance(error, TransientError)
    assert (error.code, error.request_id) == (50002, "r-sys")
    assert_no_secret(error)


def test_code_40105_is_an_auth_error() -> None:
    error = failing_mapping(answer(200, envelope(40105, "Access token is incorrect or has been revoked")))
    assert isinstance(error, AuthError)
    assert error.code == 40105
    assert_no_secret(error)


def test_code_40002_is_permanent_with_tiktoks_message_and_request_id() -> None:
    error = failing_mapping(answer(200, envelope(40002, "Invalid audience_ids", "202405011234")))
    assert isinstance(error, PermanentError)
    assert (error.code, error.message, error.request_id) == (40002, "Invalid audience_ids", "202405011234")
    assert "202405011234" in str(error)
    assert_no_secret(error)


def test_unknown_code_is_permanent() -> None:
    error = failing_mapping(answer(200, envelope(41234, "Something new")))
    assert isinstance(error, PermanentError)
    assert error.code == 41234


def test_a_token_echoed_by_tiktok_is_redacted() -> None:
    error = failing_mapping(answer(200, envelope(40105, f"token {TOKEN} expired")))
    assert isinstance(error, AuthError)
    assert_no_secret(error)


def test_unreadable_success_answer_is_transient() -> None:
    error = failing_mapping(answer(200, b"<html>gateway</html>"))
    assert isinstance(error, TransientError)


# --- the network failing -----------------------------------------------------------------------------------


def test_an_answer_slower_than_the_timeout_is_transient() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response(envelope(0))

    async def scenario() -> TikTokError:
        async with fake_tiktok(slow, timeout=0.2) as (client, _):
            try:
                return await mapping_error(client)
            finally:
                release.set()  # let the server finish so it shuts down at once

    error = run(scenario())
    assert isinstance(error, TransientError)
    assert error.code is None and error.http_status is None
    assert_no_secret(error)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"", id="hangs-up-without-answering"),
        pytest.param(
            b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"code": 0',
            id="hangs-up-mid-body",
        ),
    ],
)
def test_a_dropped_connection_is_transient(reply: bytes) -> None:
    async def scenario() -> TikTokError:
        async with raw_server(reply) as base_url, TikTokClient(base_url, timeout=5) as client:
            return await mapping_error(client)

    error = run(scenario())
    assert isinstance(error, TransientError)
    assert_no_secret(error)


def test_a_refused_connection_is_transient() -> None:
    port = free_port()  # nothing listens there

    async def scenario() -> TikTokError:
        async with TikTokClient(f"http://127.0.0.1:{port}", timeout=5) as client:
            return await mapping_error(client)

    error = run(scenario())
    assert isinstance(error, TransientError)
    assert_no_secret(error)


# --- sessions ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_client_is_built_outside_any_event_loop_and_opens_its_session_on_first_use() -> None:
    # Workers may build the client before the fork; its session must come later, inside the child's loop.
    port = free_port()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client = TikTokClient(f"http://127.0.0.1:{port}/")

    async def scenario() -> dict[str, Any]:
        app = web.Application()
        app.router.add_get("/open_api/v1.3/user/info/", answer(200, envelope(0, data={"id": "u"})))
        async with TestServer(app, port=port):
            try:
                return await client.user_info(TOKEN)
            finally:
                await client.close()

    assert run(scenario()) == {"id": "u"}


def test_a_session_passed_in_is_left_open() -> None:
    async def scenario() -> bool:
        app = web.Application()
        app.router.add_get("/open_api/v1.3/user/info/", answer(200, envelope(0, data={"id": "u"})))
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            client = TikTokClient(str(server.make_url("/")), session=session)
            assert await client.user_info(TOKEN) == {"id": "u"}
            await client.close()
            return session.closed

    assert run(scenario()) is False


def test_an_answer_larger_than_the_cap_is_not_read_and_is_transient() -> None:
    from worker.tiktok.client import MAX_ANSWER_BYTES

    error = failing_mapping(answer(200, b"x" * (MAX_ANSWER_BYTES + 1)))
    assert isinstance(error, TransientError)
    assert "larger than" in error.message
    assert_no_secret(error)


def test_absurd_retry_after_values_are_left_to_the_retry_policy() -> None:
    for value in ("99999999", "1e16"):
        error = failing_mapping(answer(429, b"", headers={"Retry-After": value}))
        assert isinstance(error, ThrottledError) and error.retry_after == float(value)
    error = failing_mapping(answer(429, b"", headers={"Retry-After": "soon"}))
    assert isinstance(error, ThrottledError) and error.retry_after is None
