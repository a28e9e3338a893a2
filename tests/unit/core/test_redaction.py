"""Secrets are blanked out in every shape they travel in, not only as exact copies."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import orjson

from core.redaction import REDACTED, Redactor, redact
from worker.tiktok.errors import redact as redact_tiktok_message

TOKEN = "act.Ab/Cd+Ef=Gh 123"


def test_every_shape_of_a_secret_is_blanked() -> None:
    shapes = [TOKEN, TOKEN.upper(), TOKEN.lower(), quote(TOKEN, safe=""), quote(TOKEN, safe="").lower(),
              quote_plus(TOKEN), orjson.dumps(TOKEN).decode()[1:-1],
              base64.b64encode(f"{TOKEN}:".encode()).decode()]
    for shape in shapes:
        text = f"TikTok said: invalid token <{shape}> (request 42)"
        assert redact(text, [TOKEN]) == f"TikTok said: invalid token <{REDACTED}> (request 42)", shape
        assert redact_tiktok_message(text, [TOKEN]).count(REDACTED) == 1


def test_short_values_are_blanked_only_as_they_are_and_the_log_redactor_ignores_them() -> None:
    assert redact("code abc and ABC", ["abc"]) == f"code {REDACTED} and {REDACTED}"
    assert Redactor(["abc"])("code abc") == "code abc"
    redactor = Redactor()
    redactor.add("s3cret-value")
    assert redactor("x=S3CRET-VALUE") == f"x={REDACTED}"


def test_text_without_secrets_is_unchanged() -> None:
    assert redact("nothing to see", [TOKEN, ""]) == "nothing to see"
    assert redact("nothing to see", []) == "nothing to see"
