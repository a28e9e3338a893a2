"""Migrating from Segment, as a user does it: import the destination Segment's Public API describes, run the
service on the imported file, and remove the users Segment's own destination added (same digests)."""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.events import wait_until
from tests.support.stack import ADVERTISER, TOKEN, Stack

pytestmark = pytest.mark.integration

AUDIENCE = "3000000000000000009"
EMAIL, PHONE, IDFA = "testing@testing.com", "1234567890", "6D92078A-8246-4BA4-AE5B-76104861E7DC"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# What Segment's destination sends for that user: the email normalised, the phone and IDFA as given.
SEGMENT_ROW = [sha(EMAIL), sha(PHONE), sha(IDFA)]
SEGMENT_MEMBERS = {f"EMAIL_SHA256:{SEGMENT_ROW[0]}", f"PHONE_SHA256:{SEGMENT_ROW[1]}", f"IDFA_SHA256:{SEGMENT_ROW[2]}"}


def segment_added_the_user(sandbox_url: str) -> None:
    """The request Segment's destination made when the user entered the audience, sent to the sandbox."""
    body = {
        "advertiser_ids": [ADVERTISER],
        "action": "add",
        "id_schema": ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256"],
        "batch_data": [[{"id": digest, "audience_ids": [AUDIENCE]} for digest in SEGMENT_ROW]],
    }
    request = urllib.request.Request(
        f"{sandbox_url}/open_api/v1.3/segment/mapping/",
        data=orjson.dumps(body),
        method="POST",
        headers={"Access-Token": TOKEN, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert orjson.loads(answer.read())["code"] == 0


def export(tmp_path: Path) -> tuple[str, str]:
    """What GET /destinations/{id} and GET /destinations/{id}/subscriptions answer."""
    destination = {"data": {"destination": {
        "id": "segment-dest-1", "name": "TikTok Audiences", "enabled": True,
        "settings": {"advertiser_ids": [ADVERTISER]},
        "metadata": {"slug": "actions-tiktok-audiences"},
    }}}
    subscription: dict[str, Any] = {"actionId": "a", "destinationId": "segment-dest-1", "modelId": "", "settings": {}}
    subscriptions = {"data": {"subscriptions": [
        {**subscription, "id": "s1", "name": "Entered", "actionSlug": "addToAudience", "enabled": True,
         "trigger": 'event = "Audience Entered"'},
        {**subscription, "id": "s2", "name": "Exited", "actionSlug": "removeFromAudience", "enabled": True,
         "trigger": 'match(event, "Audience Exit*")'},
    ]}}
    paths = (tmp_path / "destination.json", tmp_path / "subscriptions.json")
    paths[0].write_bytes(orjson.dumps(destination))
    paths[1].write_bytes(orjson.dumps(subscriptions))
    return str(paths[0]), str(paths[1])


def exited() -> dict[str, Any]:
    return {
        "type": "track", "event": "Audience Exited", "userId": "u1", "messageId": "exit-1",
        "properties": {"vip": False},
        "context": {
            "traits": {"email": EMAIL, "phone": PHONE},
            "device": {"advertisingId": IDFA},
            "personas": {"computation_key": "vip", "external_audience_id": AUDIENCE,
                         "audience_settings": {"advertiserId": ADVERTISER}},
        },
    }


def test_an_imported_destination_removes_the_users_segment_added(stack: Stack, tmp_path: Path) -> None:
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="vip", audience_id=AUDIENCE)
    segment_added_the_user(stack.env["TIKTOK_API_BASE_URL"])
    assert set(stack.sandbox.members(AUDIENCE)) == SEGMENT_MEMBERS

    code, _, report = stack.cli("config", "import-segment", *export(tmp_path), "-o", str(tmp_path / "imported.yaml"))
    assert code == 0, report
    assert "imported 2 mapping(s)" in report
    stack.config_path.write_text((tmp_path / "imported.yaml").read_text())
    stack.start_intake()
    stack.start_worker()

    status, body = stack.post("/v1/batch", {"batch": [exited()]})
    assert status == 200 and body["rejected"] == 0, body
    wait_until(stack.backlog_settled, 60, message=f"every operation settled\n{stack.logs()}")
    assert stack.sandbox.members(AUDIENCE) == []  # all three identifiers reached, phone and IDFA included
