"""HTTP intake: Segment's tracking API answers, auth, body limits, and 503 when events cannot be stored."""

from __future__ import annotations

import base64
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import fakeredis
import orjson
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from producer.auth import sign
from producer.batch_context import with_batch_level
from producer.http import StartupError, build_app, ensure_port_free, serve
from producer.http.event_routes import SINGLE_EVENT_LIMIT
from producer.intake import Intake
from tests.unit.producer.intake_fakes import (
    NO_IDENTIFIER,
    TARGET,
    AsyncDownRedis,
    AsyncPipelineDownRedis,
    entered,
    router,
    settings,
    sha,
)
from worker import keys

pytestmark = pytest.mark.asyncio

KEY = "write-key-1"
SECRET = "webhook-secret"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def store(server: fakeredis.FakeServer) -> fakeredis.FakeRedis:
    """A sync view of the Redis the app writes to, for assertions."""
    return fakeredis.FakeRedis(server=server)


@pytest_asyncio.fixture
async def make_client(server: fakeredis.FakeServer) -> AsyncIterator[MakeClient]:
    clients: list[TestClient[Any, Any]] = []

    async def make(redis_client: Any = None, *, no_auth: bool = False,
                   **overrides: Any) -> TestClient[Any, Any]:
        conf = settings(write_keys=KEY, webhook_secret=SECRET, **overrides)
        redis_client = redis_client or fakeredis.aioredis.FakeRedis(server=server)
        intake = Intake(router(), redis_client, conf)
        client = TestClient(TestServer(build_app(intake, conf, no_auth=no_auth)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def stored(store: fakeredis.FakeRedis) -> int:
    return int(store.get(keys.BACKLOG) or 0)


# -- single events -----------------------------------------------------------------------------------------


async def test_track_stores_the_event_and_answers_success(make_client: MakeClient,
                                                          store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    event = entered()
    del event["type"]  # the route supplies it
    event["timestamp"] = "2026-12-07T03:30:00.250Z"

    resp = await client.post("/v1/track", data=orjson.dumps(event), headers=AUTH)

    assert resp.status == 200
    assert await resp.json() == {"success": True}
    [(_, fields)] = store.xrange(keys.stream(TARGET.name))
    assert orjson.loads(fields[b"o"]) == [["a", sha("person@example.com"), "", "", "", 1_796_614_200_250, "m1"]]


async def test_identify_route_takes_identify_events(make_client: MakeClient) -> None:
    client = await make_client()
    resp = await client.post("/v1/identify", data=b'{"userId": "u1", "traits": {"vip": true}}', headers=AUTH)
    assert resp.status == 200


async def test_an_event_of_another_type_than_the_route_is_refused(make_client: MakeClient,
                                                                  store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    resp = await client.post("/v1/identify", data=orjson.dumps(entered()), headers=AUTH)

    assert resp.status == 400
    body = await resp.json()
    assert body["success"] is False and '"identify"' in body["message"]
    assert body["code"] == "invalid_type"
    assert stored(store) == 0


async def test_a_rejected_event_answers_400_with_the_reason(make_client: MakeClient,
                                                            store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    resp = await client.post("/v1/track", data=orjson.dumps(entered(None)), headers=AUTH)

    assert resp.status == 400
    body = await resp.json()
    assert body == {"success": False, "code": "no_identifier",
                    "message": f"mapping 1 (addToAudience): {NO_IDENTIFIER}"}
    assert store.hget(keys.REJECTED, "no_identifier") == b"1"


async def test_invalid_json_is_named(make_client: MakeClient) -> None:
    client = await make_client()
    resp = await client.post("/v1/track", data=b'{"type": "track",', headers=AUTH)

    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "invalid_json" and body["message"].startswith("invalid JSON")


# -- batches and webhooks ----------------------------------------------------------------------------------


async def test_batch_answers_per_event_results_for_the_rejected_ones(make_client: MakeClient,
                                                                     store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    batch = {"batch": [entered("a@example.com", "m0"), entered(None, "m1"), "junk"]}

    resp = await client.post("/v1/batch", data=orjson.dumps(batch), headers=AUTH)

    assert resp.status == 200
    body = await resp.json()
    assert (body["success"], body["accepted"], body["rejected"]) == (True, 1, 2)
    assert [(r["index"], r["messageId"], r["status"]) for r in body["results"]] == [
        (1, "m1", "rejected"), (2, None, "rejected")]
    assert stored(store) == 1


async def test_batch_with_everything_accepted_has_no_results(make_client: MakeClient) -> None:
    client = await make_client()
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()]}), headers=AUTH)

    assert await resp.json() == {"success": True, "accepted": 1, "rejected": 0}


async def test_batch_level_context_applies_to_every_event_and_the_events_own_values_win(
        make_client: MakeClient, store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    shared_context = entered("shared@example.com")["context"]
    own = entered("own@example.com", "m1")
    bare = {k: v for k, v in entered(message_id="m0").items() if k != "context"}
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [bare, own], "context": shared_context}),
                             headers=AUTH)

    assert await resp.json() == {"success": True, "accepted": 2, "rejected": 0}
    [entry] = store.xrange(keys.stream(TARGET.name))
    emails = [op[1] for op in orjson.loads(entry[1][b"o"])]
    assert emails == [sha("shared@example.com"), sha("own@example.com")]


async def test_batch_level_objects_merge_key_by_key_through_nested_objects() -> None:
    shared = {"context": {"traits": {"email": "a@example.com", "plan": "pro"}, "library": {"name": "x"}},
              "integrations": {"All": False}}
    event = {"type": "track", "context": {"traits": {"email": "b@example.com"}}, "integrations": "odd"}

    merged = with_batch_level(event, shared)

    assert merged["context"] == {"traits": {"email": "b@example.com", "plan": "pro"}, "library": {"name": "x"}}
    assert merged["integrations"] == "odd"  # not an object: left for validation to refuse
    assert event["context"] == {"traits": {"email": "b@example.com"}}  # the event itself is not changed
    assert with_batch_level("junk", shared) == "junk"


async def test_a_batch_level_context_that_is_not_an_object_is_refused(make_client: MakeClient) -> None:
    client = await make_client()
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()], "context": [1]}),
                             headers=AUTH)
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "invalid_field" and "batch-level" in body["message"]


async def test_batch_needs_a_batch_array(make_client: MakeClient) -> None:
    client = await make_client()
    for body in ([entered()], {"events": []}, {"batch": {}}):
        resp = await client.post("/v1/batch", data=orjson.dumps(body), headers=AUTH)
        assert resp.status == 400


async def test_webhook_with_a_good_signature_takes_an_array(make_client: MakeClient,
                                                            store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    body = orjson.dumps([entered("a@example.com"), entered("b@example.com")])

    resp = await client.post("/v1/webhook", data=body, headers={"X-Signature": sign(body, SECRET)})

    assert resp.status == 200
    assert (await resp.json())["accepted"] == 2
    assert stored(store) == 2


async def test_webhook_takes_a_single_event_and_key_auth(make_client: MakeClient) -> None:
    client = await make_client()
    resp = await client.post("/v1/webhook", data=orjson.dumps(entered()), headers=AUTH)
    assert (await resp.json())["accepted"] == 1


async def test_webhook_with_a_bad_signature_is_refused(make_client: MakeClient,
                                                       store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    body = orjson.dumps(entered())

    bad = ({"X-Signature": sign(body, "wrong secret")}, {"X-Signature": sign(body + b" ", SECRET)}, {})
    for headers in bad:
        resp = await client.post("/v1/webhook", data=body, headers=headers)
        assert resp.status == 401
    assert stored(store) == 0


# -- auth and limits ---------------------------------------------------------------------------------------


async def test_missing_or_wrong_write_key_is_401(make_client: MakeClient, store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    body = orjson.dumps(entered())

    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-Signature": sign(body, SECRET)}):
        resp = await client.post("/v1/track", data=body, headers=headers)
        assert resp.status == 401
        assert "WWW-Authenticate" in resp.headers
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()]}),
                             headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 200
    assert stored(store) == 1


async def test_no_auth_mode_takes_anything(make_client: MakeClient) -> None:
    client = await make_client(no_auth=True)
    resp = await client.post("/v1/track", data=orjson.dumps(entered()))
    assert resp.status == 200


async def test_bodies_over_the_route_limit_are_413(make_client: MakeClient,
                                                   store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    big = orjson.dumps(entered(padding="x" * SINGLE_EVENT_LIMIT))

    resp = await client.post("/v1/track", data=big, headers=AUTH)
    assert resp.status == 413

    assert await resp.json() == {"success": False, "code": "body_too_large",
                                 "message": f"body of {len(big)} bytes is over this route's limit of "
                                            f"{SINGLE_EVENT_LIMIT} bytes"}

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"batch": ['
        for _ in range(600):
            yield orjson.dumps(entered(padding="x" * 1000)) + b","
        yield b"{}]}"

    small = await make_client(max_batch_bytes=500 * 1024)
    resp = await small.post("/v1/batch", data=chunked(), headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["message"] == f"body is over this route's limit of {500 * 1024} bytes"
    assert stored(store) == 0


async def test_batches_up_to_four_megabytes_are_taken_as_rudderstack_sends_them(
        make_client: MakeClient, store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    events = [entered(f"u{i}@example.com", f"m{i}", padding="x" * 3000) for i in range(1200)]
    body = orjson.dumps({"batch": events})
    assert 3_500_000 < len(body) < 4 * 1024 * 1024

    resp = await client.post("/v1/batch", data=body, headers=AUTH)
    assert resp.status == 200
    assert (await resp.json())["accepted"] == 1200

    resp = await client.post("/v1/batch", data=body + b" " * (4 * 1024 * 1024 - len(body) + 1), headers=AUTH)
    assert resp.status == 413
    assert f"limit of {4 * 1024 * 1024} bytes" in (await resp.json())["message"]


async def test_gzip_bodies_are_accepted(make_client: MakeClient) -> None:
    client = await make_client()
    body = gzip.compress(orjson.dumps({"batch": [entered("a@example.com"), entered("b@example.com")]}))

    resp = await client.post("/v1/batch", data=body, headers={**AUTH, "Content-Encoding": "gzip"})

    assert resp.status == 200
    assert (await resp.json())["accepted"] == 2


# -- when events cannot be stored --------------------------------------------------------------------------


async def test_redis_down_is_503_and_nothing_is_accepted(
    make_client: MakeClient, server: fakeredis.FakeServer, store: fakeredis.FakeRedis
) -> None:
    client = await make_client(AsyncPipelineDownRedis(server=server))

    for path, body in (("/v1/track", entered()), ("/v1/batch", {"batch": [entered()]})):
        resp = await client.post(path, data=orjson.dumps(body), headers=AUTH)
        assert resp.status == 503
        assert "Retry-After" in resp.headers
        assert (await resp.json())["success"] is False
    assert stored(store) == 0
    assert store.xlen(keys.stream(TARGET.name)) == 0


async def test_backlog_full_is_503_with_retry_after(make_client: MakeClient,
                                                    store: fakeredis.FakeRedis) -> None:
    store.set(keys.BACKLOG, 11)
    client = await make_client(backlog_limit=10)

    resp = await client.post("/v1/track", data=orjson.dumps(entered()), headers=AUTH)

    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) > 0
    body = await resp.json()
    assert body["code"] == "backlog_full" and "backlog" in body["message"]
    assert store.xlen(keys.stream(TARGET.name)) == 0


# -- operations endpoints ----------------------------------------------------------------------------------


async def test_health_and_readiness(make_client: MakeClient) -> None:
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_not_ready_while_redis_is_down(make_client: MakeClient, server: fakeredis.FakeServer) -> None:
    client = await make_client(AsyncDownRedis(server=server))
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 503


async def test_metrics_count_events_requests_and_backlog(make_client: MakeClient) -> None:
    client = await make_client()
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


# -- serve -------------------------------------------------------------------------------------------------


async def test_serve_refuses_to_start_without_authentication(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve("127.0.0.1", 0, settings()) == 2
    assert "TTA_WRITE_KEY" in capsys.readouterr().err


async def test_serve_refuses_a_port_another_server_listens_on(capsys: pytest.CaptureFixture[str]) -> None:
    # With --workers N intake binds with SO_REUSEPORT, which would otherwise share the port with a stale server.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
            ensure_port_free("127.0.0.1", port)
        assert serve("127.0.0.1", port, settings(write_keys=KEY), processes=2) == 2
    assert "another intake" in capsys.readouterr().err
    ensure_port_free("127.0.0.1", port)  # free again once it is closed


# -- answers every client library understands ---------------------------------------------------------------


async def test_every_error_answer_has_success_code_and_message(make_client: MakeClient,
                                                               server: fakeredis.FakeServer) -> None:
    client = await make_client()
    answers = [
        await client.post("/v1/track", data=orjson.dumps(entered()), headers={}),  # 401
        await client.post("/v1/track", data=b"[", headers=AUTH),  # 400
        await client.get("/v1/track"),  # 405
        await client.post("/v1/nowhere", data=b"{}", headers=AUTH),  # 404
        await (await make_client(AsyncPipelineDownRedis(server=server))).post(
            "/v1/track", data=orjson.dumps(entered()), headers=AUTH),  # 503
    ]
    assert [a.status for a in answers] == [401, 400, 405, 404, 503]
    codes = []
    for answer in answers:
        body = await answer.json()
        assert set(body) == {"success", "code", "message"} and body["success"] is False
        assert body["message"]
        codes.append(body["code"])
    assert codes == ["unauthorized", "invalid_json", "method_not_allowed", "not_found", "store_unavailable"]


async def test_an_event_no_mapping_subscribes_to_is_answered_200_and_counted(
        make_client: MakeClient, store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    event = {"type": "track", "event": "Order Completed", "userId": "u1", "properties": {"total": 3}}

    resp = await client.post("/v1/track", data=orjson.dumps(event), headers=AUTH)

    assert resp.status == 200
    assert await resp.json() == {"success": True, "unmatched": True}
    assert store.hget(keys.METRICS, "unmatched") == b"1"
    metrics = await (await client.get("/metrics")).text()
    assert "tta_intake_events_unmatched_total 1.0" in metrics


async def test_an_opted_out_event_is_answered_200_and_counted(make_client: MakeClient,
                                                             store: fakeredis.FakeRedis) -> None:
    client = await make_client()
    batch = {"batch": [entered("a@example.com", "m0"), entered("b@example.com", "m1")],
             "integrations": {"All": False}}

    resp = await client.post("/v1/batch", data=orjson.dumps(batch), headers=AUTH)

    assert await resp.json() == {"success": True, "accepted": 2, "rejected": 0, "opted_out": 2}
    assert store.hget(keys.METRICS, "opted_out") == b"2"
    assert store.xlen(keys.stream(TARGET.name)) == 0


async def test_the_batch_sent_at_corrects_original_timestamps(make_client: MakeClient,
                                                             store: fakeredis.FakeRedis) -> None:
    # The device's clock runs an hour fast: its event happened 2 s before it sent the batch.
    client = await make_client()
    event = entered()
    event["originalTimestamp"] = "2026-12-07T04:30:00.000Z"
    batch = {"batch": [event], "sentAt": "2026-12-07T04:30:02.000Z"}

    before = __import__("time").time()
    resp = await client.post("/v1/batch", data=orjson.dumps(batch), headers=AUTH)
    after = __import__("time").time()

    assert resp.status == 200
    [(_, fields)] = store.xrange(keys.stream(TARGET.name))
    [packed] = orjson.loads(fields[b"o"])
    assert int(before * 1000) - 2000 <= packed[5] <= int(after * 1000) - 2000


async def test_an_unreadable_timestamp_is_400_naming_the_field(make_client: MakeClient) -> None:
    client = await make_client()
    event = entered()
    event["timestamp"] = "yesterday"

    resp = await client.post("/v1/track", data=orjson.dumps(event), headers=AUTH)

    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "invalid_timestamp" and "'timestamp'" in body["message"]


async def test_a_large_webhook_is_routed_with_the_collector_off_and_leaves_it_on(
        make_client: MakeClient, store: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from producer.intake import Intake as RealIntake

    seen: list[bool] = []
    route_all = RealIntake._route_all

    def noting(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return route_all(self, *args, **kwargs)

    monkeypatch.setattr(RealIntake, "_route_all", noting)
    client = await make_client()
    body = orjson.dumps([entered(f"p{i}@example.com", f"m{i}") for i in range(6_000)])
    assert len(body) > 1024 * 1024  # parsed in pieces: large
    resp = await client.post("/v1/webhook", data=body, headers=AUTH)
    assert resp.status == 200 and (await resp.json())["accepted"] == 6_000
    assert seen and not any(seen)
    assert gc.isenabled()
    small = await client.post("/v1/webhook", data=orjson.dumps([entered()]), headers=AUTH)
    assert small.status == 200 and seen[-1] is True
