"""A full run of hostile input through a real stack (intake, worker, Redis, the sandbox) and the operator
commands: no log line, answer, command output or Redis value carries the write key, the webhook secret, the
access token, the app secret, the auth code or any raw identifier, in any shape; and every log line is JSON."""

from __future__ import annotations

import base64
import gzip
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from producer.http.auth import sign
from sandbox.config import DEFAULT_APP_ID, DEFAULT_APP_SECRET, DEFAULT_AUTH_CODE
from tests.support.events import wait_until
from tests.support.stack import ADVERTISER, TOKEN, WRITE_KEY, Stack

pytestmark = pytest.mark.integration

AUDIENCE = "3000000000000000001"
WEBHOOK_SECRET = "it-webhook-secret-7f3a"
APP_SECRET_ENV = "IT_APP_SECRET"
EMAILS = [f"Leaky.Person{i}@Example.com" for i in range(6)]
PHONES = ["+1 415 555 0187", "(415) 555-0166"]
DEVICE_ID = "6D92078A-8246-4BA4-AE5B-76104861E7DC"


def event(i: int, **traits: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Audience Entered", "userId": f"u{i}", "messageId": f"leak-{i}",
            "properties": {"leaky": True},
            "context": {"traits": {"email": EMAILS[i % len(EMAILS)], **traits},
                        "personas": {"computation_key": "leaky", "external_audience_id": AUDIENCE}}}


def shapes(secret: str) -> set[str]:
    """Every way the secret could show: as is, in other case, percent-encoded, in a Basic auth header."""
    return {secret, secret.upper(), secret.lower(), quote(secret, safe=""), quote(secret, safe="").lower(),
            base64.b64encode(f"{secret}:".encode()).decode().rstrip("=")}


def raw_request(port: int, data: bytes, *, close_after: float | None = None) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if close_after is not None:
            return b""
        sock.settimeout(3)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and received.endswith(b"}"):
                    break
        except TimeoutError:
            pass
        return received


def head(path: str, headers: dict[str, str] | list[tuple[str, str]], body: bytes = b"") -> bytes:
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"POST {path} HTTP/1.1", "Host: intake"] + [f"{k}: {v}" for k, v in items]
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


def test_hostile_run_leaks_nothing(stack: Stack, tmp_path: Path) -> None:
    stack.env["TTA_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    stack.env["TTA_LOG_LEVEL"] = "debug"  # the most talkative the service gets
    stack.env[APP_SECRET_ENV] = DEFAULT_APP_SECRET
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="leaky", audience_id=AUDIENCE)
    stack.start_intake()
    stack.start_worker()
    port = int(stack.intake_url.rsplit(":", 1)[1])
    basic = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    answers: list[bytes] = []

    # Good events carrying every kind of identifier, so the worker really delivers them.
    good = [event(0), event(1, phone=PHONES[0]), event(2, phone=PHONES[1])]
    good[2]["context"]["device"] = {"advertisingId": DEVICE_ID, "type": "ios"}
    body = orjson.dumps({"batch": good})
    answers.append(raw_request(port, head("/v1/batch", {"Authorization": basic,
                                                         "Content-Type": "application/json"}, body)))
    signed = orjson.dumps([event(3)])
    answers.append(raw_request(port, head("/v1/webhook", {"X-Signature": sign(signed, WEBHOOK_SECRET)}, signed)))

    hostile: list[bytes] = [
        head("/v1/track", [("Authorization", basic + "\x01")], orjson.dumps(event(4))),  # control character
        head("/v1/track", {"Authorization": f"Bearer {WRITE_KEY}" + "k" * 9000}, orjson.dumps(event(4))),
        head("/v1/track", {"Authorization": f"Bearer {WRITE_KEY.upper()}"}, orjson.dumps(event(4))),
        head("/v1/track", {"Authorization": f"Bearer {quote(WRITE_KEY)}%00"}, orjson.dumps(event(4))),
        head("/v1/webhook", {"X-Signature": "é" * 40}, orjson.dumps(event(5))),
        head("/v1/webhook", {"X-Signature": WEBHOOK_SECRET}, orjson.dumps(event(5))),
        head("/v1/batch", {"Authorization": basic, "Content-Encoding": "gzip"}, orjson.dumps({"batch": [event(5)]})),
        head("/v1/batch", {"Authorization": basic, "Content-Encoding": "gzip"}, b"\x1f\x8b" + gzip.compress(b"x")[2:9]),
        head("/v1/batch", {"Authorization": basic, "Content-Encoding": "zstd-ish"}, orjson.dumps(event(5))),
        head("/v1/batch", {"Authorization": basic},
             b'{"batch":[' + orjson.dumps(event(5))[:-1] + b',"x":' + b'{"a":' * 900 + b"1" + b"}" * 900
             + b'}],"context":' + b'{"a":' * 900 + b"1" + b"}" * 900 + b"}"),
        head("/v1/batch", {"Authorization": basic}, b'{"batch": [{"email": "' + EMAILS[5].encode() + b'", '),
        head("/v1/track", {"Authorization": basic},
             orjson.dumps({**event(5), "context": {"traits": {"email": "not an email " + EMAILS[5]}}})),
        head("/v1/track", {"Authorization": basic},
             orjson.dumps({"type": "track", "event": "Audience Entered", "userId": EMAILS[5],
                           "context": {"traits": {"phone": "+1 415 555"},
                                       "personas": {"computation_key": "k" * 5000}}})),
        head("/v1/identify", {"Authorization": basic},
             orjson.dumps({"type": "track", "traits": {"email": EMAILS[5], "phone": PHONES[0]}})),
    ]
    for request in hostile:
        answers.append(raw_request(port, request))
    # A client that hangs up half way through its body.
    raw_request(port, head("/v1/batch", {"Authorization": basic}, orjson.dumps({"batch": [event(5)]}))[:-30],
                close_after=0)
    for answer in answers[2:]:
        assert answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer[:300]
    assert all(b" 500 " not in answer[:20] for answer in answers)

    wait_until(stack.backlog_settled, 60, message=f"delivery\n{stack.logs()}")
    assert len(stack.sandbox.members(AUDIENCE)) >= 4

    # Operator commands, including the token exchange with a bad and then a good auth code.
    outputs: list[str] = []
    for code, expected in (("bad-" + DEFAULT_AUTH_CODE, 1), (DEFAULT_AUTH_CODE, 0)):
        stack.env["IT_AUTH_CODE"] = code
        status, out, err = stack.cli("auth", "exchange", "--app-id", DEFAULT_APP_ID, "--secret-env",
                                     APP_SECRET_ENV, "--auth-code-env", "IT_AUTH_CODE", "--write",
                                     str(tmp_path / "token"))
        assert status == expected, out + err
        outputs.append(out + err)
    token_file = (tmp_path / "token").read_text().strip()
    for args in (("stats",), ("stats", "--json"), ("batches", "list", "--json"), ("auth", "check")):
        _, out, err = stack.cli(*args)
        outputs.append(out + err)

    stack.stop()  # flush and close every log
    logs = {path.name: path.read_text(errors="replace") for path in Path(stack.workdir).glob("*.log")}
    for name, text in logs.items():
        for line in text.splitlines():
            try:
                assert isinstance(json.loads(line), dict)  # every line one JSON object
            except ValueError:
                raise AssertionError(f"not JSON in {name}: {line[:300]}") from None
    redis_values = b"".join(stack.redis.dump(key) or b"" for key in stack.redis.scan_iter())

    everything = "\n".join([*logs.values(), *outputs, *(a.decode("latin-1") for a in answers)])
    secrets = [WRITE_KEY, WEBHOOK_SECRET, TOKEN, token_file, DEFAULT_APP_SECRET, DEFAULT_AUTH_CODE]
    identifiers = [*EMAILS, *(e.lower() for e in EMAILS), *PHONES, "4155550187", "4155550166", DEVICE_ID,
                   DEVICE_ID.lower()]
    for secret in secrets:
        for shape in shapes(secret):
            assert shape not in everything, f"a secret leaked as {shape!r}"
    for identifier in identifiers:
        assert identifier not in everything, f"raw identifier {identifier!r} leaked"
        assert identifier.encode() not in redis_values, f"raw identifier {identifier!r} reached Redis"
