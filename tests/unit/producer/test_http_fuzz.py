"""Property: whatever JSON, bytes and headers a client sends to any intake route, the answer is a deliberate
one (2xx, or a 4xx naming the problem) and never a 500: no exception escapes a handler."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.http.auth import sign
from tests.support.http import KEY, SECRET, IntakeServers, basic_auth
from tests.support.intake import ADVERTISER, AUDIENCE

GOOD_AUTH = basic_auth(KEY)
ROUTES = ["/v1/track", "/v1/identify", "/v1/batch", "/v1/webhook"]

# Words that steer values into the parts of an event routing reads.
_WORDS = ["type", "track", "identify", "event", "Audience Entered", "Audience Exited", "context", "personas",
          "traits", "properties", "computation_key", "external_audience_id", "audience_settings", "advertiserId",
          "email", "phone", "device", "advertisingId", "messageId", "userId", "batch", "integrations", "vip",
          ADVERTISER, AUDIENCE, "a@example.com", "+14155550123", "@path", "$.properties.vip"]
_keys = st.sampled_from(_WORDS) | st.text(max_size=12)
_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(_WORDS) | st.text(max_size=30))
json_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(_keys, inner, max_size=6), max_leaves=40)
events = st.dictionaries(_keys, json_values, max_size=8)
bodies = (json_values | events | st.lists(events, max_size=4)
          | st.fixed_dictionaries({"batch": st.lists(events | json_values, max_size=4)},
                                  optional={"context": json_values, "integrations": json_values}))

_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"),
                       max_size=60)
headers = st.fixed_dictionaries({}, optional={
    "Authorization": st.sampled_from([GOOD_AUTH, "Bearer " + KEY, "Basic !!!", "Bearer", ""]) | _header_text,
    "X-Signature": st.sampled_from(["0" * 40, "zz"]) | _header_text,
    "Content-Encoding": st.sampled_from(["gzip", "deflate", "identity", "br", "GZIP"]) | _header_text,
    "Content-Type": st.sampled_from(["application/json", "text/plain"]) | _header_text,
})


def _client(loop: asyncio.AbstractEventLoop) -> TestClient[Any, Any]:
    return loop.run_until_complete(IntakeServers().client())


def _check(client: TestClient[Any, Any], loop: asyncio.AbstractEventLoop, path: str, data: bytes,
           sent_headers: dict[str, str]) -> None:
    async def post() -> tuple[int, bytes]:
        async with client.post(path, data=data, headers=sent_headers) as resp:
            return resp.status, await resp.read()

    status, answer = loop.run_until_complete(post())
    assert status < 500, (status, answer[:300])
    if status >= 400:
        parsed = orjson.loads(answer)
        assert parsed["success"] is False and parsed["code"] and parsed["message"]


def test_no_json_body_or_header_makes_a_500() -> None:
    loop = asyncio.new_event_loop()
    client = _client(loop)
    try:
        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(path=st.sampled_from(ROUTES), body=bodies, sent=headers, signed=st.booleans(),
               gzipped=st.booleans())
        def check(path: str, body: Any, sent: dict[str, str], signed: bool, gzipped: bool) -> None:
            data = orjson.dumps(body)
            sent = dict(sent)
            if signed:
                sent["X-Signature"] = sign(data, SECRET)
            if gzipped:
                data, sent["Content-Encoding"] = gzip.compress(data), "gzip"
            _check(client, loop, path, data, sent)

        check()
    finally:
        loop.run_until_complete(client.close())
        loop.close()


def test_no_byte_string_makes_a_500() -> None:
    loop = asyncio.new_event_loop()
    client = _client(loop)
    try:
        @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(path=st.sampled_from(ROUTES), data=st.binary(max_size=300), sent=headers)
        def check(path: str, data: bytes, sent: dict[str, str]) -> None:
            _check(client, loop, path, data, {"Authorization": GOOD_AUTH, **sent})

        check()
    finally:
        loop.run_until_complete(client.close())
        loop.close()
