"""HTTP intake under hostile input: refused precisely (4xx naming the problem), cheaply (before the body when
possible), without echoing secrets, and without stalling other connections."""

from __future__ import annotations

import asyncio
import base64
import gzip
import itertools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from producer.http.auth import sign
from producer.intake import AsyncIntake
from tests.support.http import AUTH, KEY, SECRET, IntakeServers, raw_exchange
from tests.support.intake import entered

pytestmark = pytest.mark.asyncio

# The Authorization header as it is written on the wire.
AUTH_LINE = b"".join(f"{name}: {value}\r\n".encode() for name, value in AUTH.items())


@pytest_asyncio.fixture
async def intake() -> AsyncIterator[IntakeServers]:
    async with IntakeServers() as servers:
        yield servers


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


# -- encodings ---------------------------------------------------------------------------------------------


async def test_an_unknown_content_encoding_is_415(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()]}),
                             headers={**AUTH, "Content-Encoding": "compress"})
    assert resp.status == 415
    assert (await resp.json())["code"] == "unsupported_encoding"


@pytest.mark.parametrize("body", [orjson.dumps({"batch": [entered()]}), b"\x1f\x8b\x08\x00garbage-not-gzip"],
                         ids=["plain body labelled gzip", "corrupt gzip"])
async def test_a_body_that_is_not_the_gzip_it_claims_is_400(intake: IntakeServers, body: bytes) -> None:
    client = await intake.client()
    resp = await client.post("/v1/batch", data=body, headers={**AUTH, "Content-Encoding": "gzip"})
    assert resp.status == 400
    answer = await resp.json()
    assert answer["code"] == "bad_encoding" and "gzip" in answer["message"]


async def test_a_gzip_body_still_works(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/batch", data=gzip.compress(orjson.dumps({"batch": [entered()]})),
                             headers={**AUTH, "Content-Encoding": "gzip"})
    assert resp.status == 200 and (await resp.json())["accepted"] == 1


# -- depth, size and count limits --------------------------------------------------------------------------


async def test_batch_and_event_context_nested_1000_deep_is_400_not_500(intake: IntakeServers) -> None:
    client = await intake.client()
    event = orjson.dumps(entered())[:-1] + b',"context":' + nested(1000) + b"}"
    body = b'{"batch":[' + event + b'],"context":' + nested(1000) + b"}"
    resp = await client.post("/v1/batch", data=body, headers=AUTH)
    assert resp.status == 400
    answer = await resp.json()
    assert answer["code"] == "too_deep" and "64 levels" in answer["message"]


async def test_nesting_beyond_what_the_json_parser_takes_is_400(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/batch", data=b'{"batch":[' + nested(5000) + b"]}", headers=AUTH)
    assert resp.status == 400 and "invalid JSON" in (await resp.json())["message"]


async def test_more_events_than_the_request_cap_is_413_naming_it(intake: IntakeServers) -> None:
    client = await intake.client(max_request_events=3)
    events = [entered(f"p{i}@example.com", f"m{i}") for i in range(4)]
    resp = await client.post("/v1/webhook", data=orjson.dumps(events), headers=AUTH)
    assert resp.status == 413
    answer = await resp.json()
    assert answer["code"] == "too_many_events" and "limit of 3" in answer["message"]
    ok = await client.post("/v1/webhook", data=orjson.dumps(events[:3]), headers=AUTH)
    assert ok.status == 200


async def test_a_request_routed_in_slices_answers_every_event_by_its_own_index(
        intake: IntakeServers) -> None:
    client = await intake.client()
    events: list[Any] = [entered(f"p{i}@example.com", f"m{i}") for i in range(4_500)]
    events[2_100] = {"type": "track"}  # in the second slice
    events[4_400] = "not an event"  # in the third
    resp = await client.post("/v1/webhook", data=orjson.dumps(events), headers=AUTH)
    answer = await resp.json()
    assert resp.status == 200
    assert (answer["accepted"], answer["rejected"]) == (4_498, 2)
    assert [r["index"] for r in answer["results"]] == [2_100, 4_400]
    assert intake.backlog() == 4_498


async def test_healthz_answers_while_a_16_mb_webhook_is_routed(intake: IntakeServers,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    client = await intake.client(max_request_events=200_000)
    events = [entered(f"person{i}@example.com", f"message-{i}") for i in range(52_000)]
    body = orjson.dumps(events)
    assert 15 * 2**20 < len(body) <= 16 * 2**20
    # Other tasks must run between the parts of the routing: count loop turns seen at each part.
    turns = 0
    turns_at_each_part: list[int] = []
    accept = AsyncIntake.accept_async

    async def counting_accept(self: AsyncIntake, part: Any, **kwargs: Any) -> Any:
        turns_at_each_part.append(turns)
        return await accept(self, part, **kwargs)

    monkeypatch.setattr(AsyncIntake, "accept_async", counting_accept)

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticking = asyncio.ensure_future(ticker())
    webhook = asyncio.ensure_future(client.post("/v1/webhook", data=body, headers=AUTH))
    answered = time.monotonic()
    longest_wait = 0.0
    while not webhook.done():
        health = await client.get("/healthz")
        assert health.status == 200
        longest_wait = max(longest_wait, time.monotonic() - answered)
        answered = time.monotonic()
    ticking.cancel()
    resp = await webhook
    assert resp.status == 200 and (await resp.json())["accepted"] == 52_000
    assert len(turns_at_each_part) == 26
    assert all(later > earlier for earlier, later in itertools.pairwise(turns_at_each_part))
    # Routed in one go, such a webhook kept /healthz waiting ~1.7 s; only a loose bound on time here.
    assert longest_wait < 1.0


# -- authentication before the body ------------------------------------------------------------------------


@pytest.mark.parametrize("signature", [None, "not-a-signature", "é" * 40], ids=["none", "not hex", "non-ascii"])
async def test_a_webhook_without_key_or_plausible_signature_is_refused_before_its_body(
        intake: IntakeServers, signature: str | None) -> None:
    client = await intake.client()
    head = (b"POST /v1/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n")
    if signature is not None:
        head += b"X-Signature: " + signature.encode() + b"\r\n"
    # The body is never sent: an answer can only come if intake did not wait for it.
    answer = await raw_exchange(client.server, head + b"\r\n", then_wait=3.0)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


async def test_the_signature_path_stops_reading_at_the_size_limit(intake: IntakeServers) -> None:
    client = await intake.client()
    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # chunked, no Content-Length: only reading can tell
        nonlocal sent
        yield b"["
        while sent < 64 * 2**20:
            chunk = b'"' + b"x" * 65_534 + b'",'
            sent += len(chunk)
            yield chunk

    resp = await client.post("/v1/webhook", data=endless(), headers={"X-Signature": "ab" * 20})
    assert resp.status == 413
    assert sent < 32 * 2**20  # refused at 16 MB, not after the whole body


async def test_a_valid_signature_is_still_accepted(intake: IntakeServers) -> None:
    client = await intake.client()
    body = orjson.dumps(entered())
    resp = await client.post("/v1/webhook", data=body, headers={"X-Signature": sign(body, SECRET)})
    assert resp.status == 200


async def test_a_non_ascii_bearer_key_is_401(intake: IntakeServers) -> None:
    client = await intake.client()
    request = ("POST /v1/track HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer clé\r\n"
               "Content-Length: 2\r\n\r\n{}").encode()
    answer = await raw_exchange(client.server, request, then_wait=3.0)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


# -- headers that would leak -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_header", [
    b"Authorization: Basic " + base64.b64encode(f"{KEY}:".encode()) + b"\x01\r\n",
    b"Authorization: Bearer " + KEY.encode() + b"x" * 9000 + b"\r\n",
], ids=["control character", "over 8 KB"])
async def test_a_malformed_authorization_header_is_400_without_echo_or_log_of_the_key(
        intake: IntakeServers, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
        bad_header: bytes) -> None:
    client = await intake.client()
    encoded_key = base64.b64encode(f"{KEY}:".encode())
    caplog.set_level(logging.DEBUG)
    request = b"POST /v1/track HTTP/1.1\r\nHost: x\r\n" + bad_header + b"Content-Length: 2\r\n\r\n{}"
    answer = await raw_exchange(client.server, request, then_wait=3.0)
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), answer[:200]
    assert b"malformed_request" in answer
    assert KEY.encode() not in answer and encoded_key not in answer
    logged = caplog.text + "".join(capsys.readouterr())
    assert KEY not in logged and encoded_key.decode() not in logged


# -- timeouts and disconnects ------------------------------------------------------------------------------


async def test_a_connection_that_never_finishes_its_request_head_is_closed(intake: IntakeServers) -> None:
    client = await intake.client(header_timeout=0.3)
    started = time.monotonic()
    answer = await raw_exchange(client.server, b"POST /v1/track HTTP/1.1\r\nHost: x\r\n", then_wait=5.0)
    assert answer != b"<no answer>"  # closed by the server, not by our wait
    assert time.monotonic() - started < 5.0


async def test_a_silent_connection_is_closed(intake: IntakeServers) -> None:
    client = await intake.client(header_timeout=0.3)
    answer = await raw_exchange(client.server, b"", then_wait=5.0)
    assert answer == b""


async def test_a_body_that_trickles_past_the_body_timeout_is_408(intake: IntakeServers) -> None:
    client = await intake.client(body_timeout=0.3)
    head = b"POST /v1/track HTTP/1.1\r\nHost: x\r\n" + AUTH_LINE + b"Content-Length: 500\r\n\r\n{"
    answer = await raw_exchange(client.server, head, then_wait=5.0)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


async def test_a_client_that_hangs_up_mid_body_is_not_a_500(intake: IntakeServers) -> None:
    client = await intake.client()
    assert client.server.port is not None
    _, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n" + AUTH_LINE
                 + b'Content-Length: 5000\r\n\r\n{"batch": [')
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.sleep(0.3)
    metrics = await (await client.get("/metrics")).text()
    assert 'route="/v1/batch",status="499"' in metrics
    assert 'status="500"' not in metrics
