"""Every log line is one JSON object, whoever logs it (structlog, aiohttp, Celery, Python warnings), and no
line carries a secret in any shape: as it is, in other case, percent-encoded, or in a Basic auth header."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from urllib.parse import quote

WRITE_KEY = "wk_Secret/Value+1"
WEBHOOK_SECRET = "whsec-abcdef123456"
TOKEN = "act.TokenValue0123456789"
AUTH_CODE = "auth-code-98765"

SCRIPT = f"""
import logging, warnings
import structlog
from core.logging import add_secrets, configure_logging, keep_celery_logging
from core.settings import Settings

configure_logging(Settings(write_keys="{WRITE_KEY}", webhook_secret="{WEBHOOK_SECRET}", log_format="json"))
add_secrets("{AUTH_CODE}")
log = structlog.get_logger("test")
log.warning("plain", key="{WRITE_KEY}", upper="{WRITE_KEY.upper()}", url="{quote(WRITE_KEY, safe='')}")
log.error("token", detail="Bearer {TOKEN.lower()}", code="{AUTH_CODE}", hook="{WEBHOOK_SECRET}")
log.info("environment token", detail="{TOKEN}")
logging.getLogger("aiohttp.server").error(
    "Error handling request: Authorization: Basic {base64.b64encode(f'{WRITE_KEY}:'.encode()).decode()}")
logging.getLogger("celery.worker").warning("celery says %s", "{WRITE_KEY}")
warnings.warn("a deprecation mentioning {WEBHOOK_SECRET}", UserWarning, stacklevel=1)
try:
    raise ValueError("failed with {TOKEN}")
except ValueError:
    logging.getLogger("kombu").exception("with a traceback")
keep_celery_logging()
from celery import Celery
app = Celery("probe")
app.log.setup_logging_subsystem(loglevel="INFO")
logging.getLogger("celery.worker").warning("after celery set up logging")
"""


def run_logging_script() -> list[str]:
    env = {**os.environ, "TIKTOK_ACCESS_TOKEN": TOKEN, "TTA_LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    return done.stderr.splitlines()


def test_every_line_is_json_and_names_what_logged_it() -> None:
    lines = run_logging_script()
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    events = [r["event"] for r in records]
    assert events[:3] == ["plain", "token", "environment token"]
    assert any("Error handling request" in e for e in events)
    assert any(r.get("logger") == "celery.worker" and "celery says" in r["event"] for r in records)
    assert any(r.get("logger") == "py.warnings" for r in records)
    assert any("Traceback" in r.get("exception", "") for r in records)
    assert records[-1]["event"] == "after celery set up logging"


def test_no_line_carries_a_secret_in_any_shape() -> None:
    output = "\n".join(run_logging_script())
    basic = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    for secret in (WRITE_KEY, WEBHOOK_SECRET, TOKEN, AUTH_CODE):
        for shape in (secret, secret.upper(), secret.lower(), quote(secret, safe=""), quote(secret, safe="").lower()):
            assert shape not in output, shape
    assert basic.rstrip("=") not in output
    assert output.count("[redacted]") >= 9
