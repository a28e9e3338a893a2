"""Audience lifecycle and TikTok authorisation, through real processes: intake, Celery workers, the
sandbox TikTok and the ``tiktok-audiences`` CLI."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from producer.identifiers import hash_email
from sandbox.config import DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_AUTH_CODE
from tests.support.events import wait_until
from tests.support.stack import ADVERTISER, LEGACY_ADVERTISER, TOKEN, Stack, destinations_config

pytestmark = pytest.mark.integration

OWNED = "3000000000000000001"
FOREIGN = "4000000000000000001"  # exists, but under the other advertiser
SECRET_ENV = "IT_TIKTOK_APP_SECRET"


def engage(i: int, *, key: str, audience_id: str | None = None) -> dict[str, Any]:
    personas: dict[str, Any] = {"computation_key": key}
    if audience_id:
        personas["external_audience_id"] = audience_id
    return {"type": "track", "event": "Audience Entered", "userId": f"u{i}", "messageId": f"{key}-{i}",
            "properties": {key: True}, "context": {"traits": {"email": f"user{i}@example.com"},
                                                   "personas": personas}}


def member(i: int) -> str:
    return f"EMAIL_SHA256:{hash_email(f'user{i}@example.com')}"


def post_all(stack: Stack, events: list[dict[str, Any]]) -> None:
    status, body = stack.post("/v1/batch", {"batch": events})
    assert status == 200 and body["rejected"] == 0, body


def settle(stack: Stack, timeout: float = 40) -> None:
    wait_until(stack.backlog_settled, timeout, message=f"every operation settled\n{stack.logs()}")


def audiences_named(stack: Stack, name: str) -> list[str]:
    return [i for i, a in stack.sandbox.state()["audiences"].items() if a["name"] == name]


def cli_json(stack: Stack, *args: str) -> Any:
    code, out, err = stack.cli(*args, "--json")
    assert code == 0, err
    return orjson.loads(out)


def captured_logs(stack: Stack) -> str:
    """Everything the intake and worker processes of this test wrote."""
    return "\n".join(path.read_text(errors="replace") for path in Path(stack.workdir).glob("*.log"))


def test_first_events_from_8_connections_and_two_workers_create_one_audience(stack: Stack) -> None:
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="warm-up", audience_id=OWNED)
    stack.start_intake()
    stack.start_worker()
    stack.start_worker()
    post_all(stack, [engage(0, key="warm", audience_id=OWNED)])  # both workers up and draining
    settle(stack)
    # Slow TikTok down so that events keep arriving while the create is in flight.
    stack.sandbox.knobs(latency_ms=150)
    errors: list[BaseException] = []

    def connection(n: int) -> None:
        try:
            for request in range(5):
                base = 1000 + n * 100 + request * 10
                post_all(stack, [engage(i, key="fresh_buyers") for i in range(base, base + 10)])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=connection, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    settle(stack)

    assert stack.sandbox.counters()["create_calls"] == 1
    (audience_id,) = audiences_named(stack, "fresh_buyers")
    users = [1000 + n * 100 + r * 10 + k for n in range(8) for r in range(5) for k in range(10)]
    assert set(stack.sandbox.members(audience_id)) == {member(i) for i in users}
    rows = {r["name"]: r for r in cli_json(stack, "audiences", "list")}
    row = rows["fresh_buyers"]
    assert (row["audience_id"], row["origin"], row["delivered_members"], row["targetable"]) == (
        audience_id, "auto-create", 400, False)


def test_legacy_create_audience_events_and_the_cli_cut_long_names(stack: Stack) -> None:
    config = destinations_config()
    config["destinations"][0]["mappings"].append({
        "action": "createAudience",
        "fields": {"selected_advertiser_id": ADVERTISER,
                   "custom_audience_name": {"@path": "$.properties.audience_name"}}})
    stack.write_config(config)
    stack.start_intake()
    stack.start_worker()
    long_name = "Engage: customers who bought twice in ninety days and read every newsletter"
    cut = long_name[:67] + "..."

    def create(message_id: str, name: str) -> dict[str, Any]:
        return {"type": "track", "event": "Create Audience", "userId": "ops", "messageId": message_id,
                "properties": {"audience_name": name}}

    post_all(stack, [create("c1", long_name), create("c2", "VIP")])
    post_all(stack, [create("c3", long_name)])  # a duplicate request, e.g. a resent event
    wait_until(lambda: stack.redis.xlen("tta:creates") == 0 and audiences_named(stack, "VIP"), 30,
               message=f"the create requests to be handled\n{stack.logs()}")
    assert len(audiences_named(stack, cut)) == 1
    assert stack.sandbox.counters()["create_calls"] == 2

    code, out, err = stack.cli("audiences", "create", long_name + " (cli)")
    assert code == 0, err
    assert f"it was cut to {cut!r}" in out
    created = [i for i in audiences_named(stack, cut) if f"created audience {i} " in out]
    assert len(created) == 1
    listed = {(r["audience_id"], r["origin"]) for r in cli_json(stack, "audiences", "list")}
    assert (created[0], "cli") in listed
    assert any(origin == "legacy-create" for _, origin in listed)


def test_an_audience_of_another_advertiser_dies_with_tiktoks_answer_then_is_looked_up_before_sending(
        stack: Stack) -> None:
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="ours", audience_id=OWNED)
    stack.sandbox.seed_audience(advertiser_id=LEGACY_ADVERTISER, name="theirs", audience_id=FOREIGN)
    stack.start_intake()
    stack.start_worker()
    post_all(stack, [engage(i, key="ours", audience_id=OWNED) for i in range(3)]
             + [engage(i, key="theirs", audience_id=FOREIGN) for i in range(3)])
    settle(stack)
    dead = cli_json(stack, "batches", "list", "--status", "dead")
    assert dead and {b["audience_id"] for b in dead} == {FOREIGN}
    assert all(b["last_code"] == 40002 and b["last_request_id"] for b in dead)  # TikTok's own answer
    assert set(stack.sandbox.members(OWNED)) == {member(i) for i in range(3)}
    assert stack.sandbox.members(FOREIGN) == []
    assert all(c["code"] == 40002 for c in stack.sandbox.calls() if FOREIGN in c["audience_ids"])

    # Having seen a foreign id, the lane looks ids up before sending: the next ones never reach a mapping call.
    seen = stack.sandbox.calls()[-1]["seq"]
    post_all(stack, [engage(i, key="theirs", audience_id=FOREIGN) for i in range(3, 6)])
    settle(stack)
    refused = [b for b in cli_json(stack, "batches", "list", "--status", "dead")
               if f"audience {FOREIGN} does not belong to advertiser {ADVERTISER}" in b["last_message"]]
    assert refused
    assert not [c for c in stack.sandbox.calls(since=seen) if FOREIGN in c["audience_ids"]]


def test_a_revoked_token_pauses_the_destination_and_no_token_appears_anywhere(stack: Stack) -> None:
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="ours", audience_id=OWNED)
    stack.sandbox.knobs(revoked_tokens=[TOKEN])
    stack.start_intake()
    stack.start_worker()
    post_all(stack, [engage(i, key="ours", audience_id=OWNED) for i in range(3)])
    post_all(stack, [engage(i, key="brand_new") for i in range(3)])
    stats = wait_until(lambda: (s := cli_json(stack, "stats"))["paused_destinations"] and s, 30,
                       message=f"the destination to pause\n{stack.logs()}")
    assert "tiktok-main" in stats["paused_destinations"]
    assert stats["paused_destinations"]["tiktok-main"]["code"] == 40105
    outputs = []
    code, out, err = stack.cli("stats")
    assert code == 0 and "PAUSED destination tiktok-main" in out
    outputs.append(out + err)
    code, out, err = stack.cli("auth", "check")
    assert code == 1 and "FAIL  tiktok-main: TikTok refuses the token" in out
    outputs.append(out + err)

    stack.sandbox.knobs(revoked_tokens=[])  # re-authorised
    code, out, err = stack.cli("destinations", "resume", "tiktok-main")
    assert code == 0, err
    outputs.append(out + err)
    settle(stack)
    assert set(stack.sandbox.members(OWNED)) == {member(i) for i in range(3)}
    assert stack.sandbox.counters()["create_calls"] >= 1
    (created,) = audiences_named(stack, "brand_new")
    assert set(stack.sandbox.members(created)) == {member(i) for i in range(3)}

    logs = captured_logs(stack)
    assert "destination_paused" in logs  # the logs were captured, and say what happened
    assert TOKEN not in logs
    assert not [o for o in outputs if TOKEN in o]


def test_auth_exchange_writes_a_private_token_file_the_service_can_use(stack: Stack) -> None:
    stack.env[SECRET_ENV] = DEFAULT_APP_SECRET
    token_file = Path(stack.workdir) / "tiktok-token"

    def exchange(code: str) -> tuple[int, str, str]:
        stack.env["TTA_AUTH_CODE"] = code  # never on the command line
        return stack.cli("auth", "exchange", "--app-id", DEFAULT_APP_ID, "--secret-env", SECRET_ENV,
                         "--auth-code-env", "TTA_AUTH_CODE", "--write", str(token_file))

    code, out, err = exchange("not-a-valid-code")
    assert code != 0
    assert "TikTok refused the auth code exchange" in err and "authorise the app again" in err
    assert not token_file.exists()

    code, out, err = exchange(DEFAULT_AUTH_CODE)
    assert code == 0, err
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert ADVERTISER in out and f"access_token_file: {token_file}" in out
    outputs = [out + err]

    # The destination now takes its token from that file only.
    stack.env.pop("TIKTOK_ACCESS_TOKEN")
    config = destinations_config(access_token_file=str(token_file))
    del config["destinations"][0]["access_token_env"]
    stack.write_config(config)
    code, out, err = stack.cli("auth", "check")
    assert code == 0 and "ok    tiktok-main: the token from file" in out, out + err
    outputs.append(out + err)

    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="ours", audience_id=OWNED)
    stack.start_intake()
    stack.start_worker()
    post_all(stack, [engage(i, key="ours", audience_id=OWNED) for i in range(2)])
    settle(stack)
    assert set(stack.sandbox.members(OWNED)) == {member(i) for i in range(2)}

    everything = captured_logs(stack) + "\n".join(outputs)
    assert token not in everything and DEFAULT_APP_SECRET not in everything
