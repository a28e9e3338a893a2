"""The event routes (/v1/track, /v1/identify, /v1/batch, /v1/webhook): Segment's tracking API answers, auth,
body limits, and 503 when events cannot be stored."""

from __future__ import annotations

import gc
import gzip
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import pytest_asyncio

from producer.http.auth import sign
from producer.http.event_routes import SINGLE_EVENT_LIMIT
from producer.intake import AsyncIntake
from tests.support.http import AUTH, KEY, SECRET, FullRedis, IntakeServers
from tests.support.intake import NO_IDENTIFIER, TARGET, AsyncPipelineDownRedis, entered, sha
from worker import keys

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def intake() -> AsyncIterator[IntakeServers]:
    async with IntakeServers() as servers:
        yield servers


# -- single events -----------------------------------------------------------------------------------------


async def test_track_stores_the_event_and_answers_success(intake: IntakeServers) -> None:
    client = await intake.client()
    event = entered()
    del event["type"]  # the route supplies it
    event["timestamp"] = "2026-12-07T03:30:00.250Z"

    resp = await client.post("/v1/track", data=orjson.dumps(event), headers=AUTH)

    assert resp.status == 200
    assert await resp.json() == {"success": True}
    [(_, fields)] = intake.store.xrange(keys.stream(TARGET.name))
    assert orjson.loads(fields[b"o"]) == [["a", sha("person@example.com"), "", "", "", 1_796_614_200_250, "m1"]]


async def test_identify_route_takes_identify_events(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/identify", data=b'{"userId": "u1", "traits": {"vip": true}}', headers=AUTH)
    assert resp.status == 200


async def test_an_event_of_another_type_than_the_route_is_refused(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/identify", data=orjson.dumps(entered()), headers=AUTH)

    assert resp.status == 400
    body = await resp.json()
    assert body["success"] is False and '"identify"' in body["message"]
    assert body["code"] == "invalid_type"
    assert intake.backlog() == 0


async def test_a_rejected_event_answers_400_with_the_reason(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/track", data=orjson.dumps(entered(None)), headers=AUTH)

    assert resp.status == 400
    body = await resp.json()
    assert body == {"success": False, "code": "no_identifier",
                    "message": f"mapping 1 (addToAudience): {NO_IDENTIFIER}"}
    assert intake.store.hget(keys.REJECTED, "no_identifier") == b"1"


async def test_invalid_json_is_named(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/track", data=b'{"type": "track",', headers=AUTH)

    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "invalid_json" and body["message"].startswith("invalid JSON")


# -- batches and webhooks ----------------------------------------------------------------------------------


async def test_batch_answers_per_event_results_for_the_rejected_ones(intake: IntakeServers) -> None:
    client = await intake.client()
    batch = {"batch": [entered("a@example.com", "m0"), entered(None, "m1"), "junk"]}

    resp = await client.post("/v1/batch", data=orjson.dumps(batch), headers=AUTH)

    assert resp.status == 200
    body = await resp.json()
    assert (body["success"], body["accepted"], body["rejected"]) == (True, 1, 2)
    assert [(r["index"], r["messageId"], r["status"]) for r in body["results"]] == [
        (1, "m1", "rejected"), (2, None, "rejected")]
    assert intake.backlog() == 1


async def test_batch_with_everything_accepted_has_no_results(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()]}), headers=AUTH)

    assert await resp.json() == {"success": True, "accepted": 1, "rejected": 0}


async def test_batch_level_context_applies_to_every_event_and_the_events_own_values_win(intake: IntakeServers) -> None:
    client = await intake.client()
    shared_context = entered("shared@example.com")["context"]
    own = entered("own@example.com", "m1")
    bare = {k: v for k, v in entered(message_id="m0").items() if k != "context"}
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [bare, own], "context": shared_context}),
                             headers=AUTH)

    assert await resp.json() == {"success": True, "accepted": 2, "rejected": 0}
    [entry] = intake.store.xrange(keys.stream(TARGET.name))
    emails = [op[1] for op in orjson.loads(entry[1][b"o"])]
    assert emails == [sha("shared@example.com"), sha("own@example.com")]


async def test_a_batch_level_context_that_is_not_an_object_is_refused(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()], "context": [1]}),
                             headers=AUTH)
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "invalid_field" and "batch-level" in body["message"]


async def test_batch_needs_a_batch_array(intake: IntakeServers) -> None:
    client = await intake.client()
    for body in ([entered()], {"events": []}, {"batch": {}}):
        resp = await client.post("/v1/batch", data=orjson.dumps(body), headers=AUTH)
        assert resp.status == 400


async def test_webhook_with_a_good_signature_takes_an_array(intake: IntakeServers) -> None:
    client = await intake.client()
    body = orjson.dumps([entered("a@example.com"), entered("b@example.com")])

    resp = await client.post("/v1/webhook", data=body, headers={"X-Signature": sign(body, SECRET)})

    assert resp.status == 200
    assert (await resp.json())["accepted"] == 2
    assert intake.backlog() == 2


async def test_webhook_takes_a_single_event_and_key_auth(intake: IntakeServers) -> None:
    client = await intake.client()
    resp = await client.post("/v1/webhook", data=orjson.dumps(entered()), headers=AUTH)
    assert (await resp.json())["accepted"] == 1


async def test_webhook_with_a_bad_signature_is_refused(intake: IntakeServers) -> None:
    client = await intake.client()
    body = orjson.dumps(entered())

    bad = ({"X-Signature": sign(body, "wrong secret")}, {"X-Signature": sign(body + b" ", SECRET)}, {})
    for headers in bad:
        resp = await client.post("/v1/webhook", data=body, headers=headers)
        assert resp.status == 401
    assert intake.backlog() == 0


# -- auth and limits ---------------------------------------------------------------------------------------


async def test_missing_or_wrong_write_key_is_401(intake: IntakeServers) -> None:
    client = await intake.client()
    body = orjson.dumps(entered())

    for headers in ({}, {"Authorization": "Bearer nope"}, {"X-Signature": sign(body, SECRET)}):
        resp = await client.post("/v1/track", data=body, headers=headers)
        assert resp.status == 401
        assert "WWW-Authenticate" in resp.headers
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()]}),
                             headers={"Authorization": f"Bearer {KEY}"})
    assert resp.status == 200
    assert intake.backlog() == 1


async def test_no_auth_mode_takes_anything(intake: IntakeServers) -> None:
    client = await intake.client(no_auth=True)
    resp = await client.post("/v1/track", data=orjson.dumps(entered()))
    assert resp.status == 200


async def test_bodies_over_the_route_limit_are_413(intake: IntakeServers) -> None:
    client = await intake.client()
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

    small = await intake.client(max_batch_bytes=500 * 1024)
    resp = await small.post("/v1/batch", data=chunked(), headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["message"] == f"body is over this route's limit of {500 * 1024} bytes"
    assert intake.backlog() == 0


async def test_batches_up_to_four_megabytes_are_taken_as_rudderstack_sends_them(intake: IntakeServers) -> None:
    client = await intake.client()
    events = [entered(f"u{i}@example.com", f"m{i}", padding="x" * 3000) for i in range(1200)]
    body = orjson.dumps({"batch": events})
    assert 3_500_000 < len(body) < 4 * 1024 * 1024

    resp = await client.post("/v1/batch", data=body, headers=AUTH)
    assert resp.status == 200
    assert (await resp.json())["accepted"] == 1200

    resp = await client.post("/v1/batch", data=body + b" " * (4 * 1024 * 1024 - len(body) + 1), headers=AUTH)
    assert resp.status == 413
    assert f"limit of {4 * 1024 * 1024} bytes" in (await resp.json())["message"]


async def test_gzip_bodies_are_accepted(intake: IntakeServers) -> None:
    client = await intake.client()
    body = gzip.compress(orjson.dumps({"batch": [entered("a@example.com"), entered("b@example.com")]}))

    resp = await client.post("/v1/batch", data=body, headers={**AUTH, "Content-Encoding": "gzip"})

    assert resp.status == 200
    assert (await resp.json())["accepted"] == 2


# -- when events cannot be stored --------------------------------------------------------------------------


async def test_redis_down_is_503_and_nothing_is_accepted(intake: IntakeServers) -> None:
    client = await intake.client(AsyncPipelineDownRedis(server=intake.redis))

    for path, body in (("/v1/track", entered()), ("/v1/batch", {"batch": [entered()]})):
        resp = await client.post(path, data=orjson.dumps(body), headers=AUTH)
        assert resp.status == 503
        assert "Retry-After" in resp.headers
        assert (await resp.json())["success"] is False
    assert intake.backlog() == 0
    assert intake.store.xlen(keys.stream(TARGET.name)) == 0


async def test_backlog_full_is_503_with_retry_after(intake: IntakeServers) -> None:
    intake.store.set(keys.BACKLOG, 11)
    client = await intake.client(backlog_limit=10)

    resp = await client.post("/v1/track", data=orjson.dumps(entered()), headers=AUTH)

    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) > 0
    body = await resp.json()
    assert body["code"] == "backlog_full" and "backlog" in body["message"]
    assert intake.store.xlen(keys.stream(TARGET.name)) == 0


async def test_a_failed_store_says_the_events_may_have_been_stored(intake: IntakeServers) -> None:
    client = await intake.client(AsyncPipelineDownRedis())
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()]}), headers=AUTH)
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert "may not have been stored; retry" in (await resp.json())["message"]


async def test_redis_out_of_memory_is_503_naming_it(intake: IntakeServers) -> None:
    client = await intake.client(FullRedis())
    resp = await client.post("/v1/batch", data=orjson.dumps({"batch": [entered()]}), headers=AUTH)
    assert resp.status == 503 and int(resp.headers["Retry-After"]) > 0
    answer = await resp.json()
    assert answer["code"] == "store_out_of_memory" and "out of memory" in answer["message"]


# -- answers every client library understands ---------------------------------------------------------------


async def test_every_error_answer_has_success_code_and_message(intake: IntakeServers) -> None:
    client = await intake.client()
    answers = [
        await client.post("/v1/track", data=orjson.dumps(entered()), headers={}),  # 401
        await client.post("/v1/track", data=b"[", headers=AUTH),  # 400
        await client.get("/v1/track"),  # 405
        await client.post("/v1/nowhere", data=b"{}", headers=AUTH),  # 404
        await (await intake.client(AsyncPipelineDownRedis(server=intake.redis))).post(
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


async def test_an_event_no_mapping_subscribes_to_is_answered_200_and_counted(intake: IntakeServers) -> None:
    client = await intake.client()
    event = {"type": "track", "event": "Order Completed", "userId": "u1", "properties": {"total": 3}}

    resp = await client.post("/v1/track", data=orjson.dumps(event), headers=AUTH)

    assert resp.status == 200
    assert await resp.json() == {"success": True, "unmatched": True}
    assert intake.store.hget(keys.METRICS, "unmatched") == b"1"
    metrics = await (await client.get("/metrics")).text()
    assert "tta_intake_events_unmatched_total 1.0" in metrics


async def test_an_opted_out_event_is_answered_200_and_counted(intake: IntakeServers) -> None:
    client = await intake.client()
    batch = {"batch": [entered("a@example.com", "m0"), entered("b@example.com", "m1")],
             "integrations": {"All": False}}

    resp = await client.post("/v1/batch", data=orjson.dumps(batch), headers=AUTH)

    assert await resp.json() == {"success": True, "accepted": 2, "rejected": 0, "opted_out": 2}
    assert intake.store.hget(keys.METRICS, "opted_out") == b"2"
    assert intake.store.xlen(keys.stream(TARGET.name)) == 0


async def test_the_batch_sent_at_corrects_original_timestamps(intake: IntakeServers) -> None:
    # The device's clock runs an hour fast: its event happened 2 s before it sent the batch.
    client = await intake.client()
    event = entered()
    event["originalTimestamp"] = "2026-12-07T04:30:00.000Z"
    batch = {"batch": [event], "sentAt": "2026-12-07T04:30:02.000Z"}

    before = time.time()
    resp = await client.post("/v1/batch", data=orjson.dumps(batch), headers=AUTH)
    after = time.time()

    assert resp.status == 200
    [(_, fields)] = intake.store.xrange(keys.stream(TARGET.name))
    [packed] = orjson.loads(fields[b"o"])
    assert int(before * 1000) - 2000 <= packed[5] <= int(after * 1000) - 2000


async def test_an_unreadable_timestamp_is_400_naming_the_field(intake: IntakeServers) -> None:
    client = await intake.client()
    event = entered()
    event["timestamp"] = "yesterday"

    resp = await client.post("/v1/track", data=orjson.dumps(event), headers=AUTH)

    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "invalid_timestamp" and "'timestamp'" in body["message"]


async def test_a_large_webhook_is_routed_with_the_collector_off_and_leaves_it_on(
        intake: IntakeServers, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    accept = AsyncIntake.accept_async

    async def noting(self: AsyncIntake, *args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return await accept(self, *args, **kwargs)

    monkeypatch.setattr(AsyncIntake, "accept_async", noting)
    client = await intake.client()
    body = orjson.dumps([entered(f"p{i}@example.com", f"m{i}") for i in range(6_000)])
    assert len(body) > 1024 * 1024  # parsed in pieces: large
    resp = await client.post("/v1/webhook", data=body, headers=AUTH)
    assert resp.status == 200 and (await resp.json())["accepted"] == 6_000
    assert seen and not any(seen)
    assert gc.isenabled()
    small = await client.post("/v1/webhook", data=orjson.dumps([entered()]), headers=AUTH)
    assert small.status == 200 and seen[-1] is True
