"""Shadow mode and resync, as a user migrating from Segment runs them: a shadow destination beside a live
delivery records what it would send and changes nothing at TikTok; an audience TikTok lost is re-sent from the
membership the service recorded, through Celery workers and the sandbox."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.support.events import email_member, engage, post_all, wait_until
from tests.support.stack import ADVERTISER, LEGACY_AUDIENCE, Stack, destinations_config

pytestmark = pytest.mark.integration

AUDIENCE = "3000000000000000007"


def settle(stack: Stack, timeout: float = 60) -> None:
    wait_until(stack.backlog_settled, timeout, message=f"every operation settled\n{stack.logs()}")


def legacy(event: str, i: int) -> dict[str, Any]:
    return {"type": "track", "event": event, "userId": f"u{i}", "messageId": f"{event}-{i}",
            "properties": {"email": f"user{i}@example.com"}}


def test_a_shadow_destination_records_what_it_would_send_and_changes_nothing_at_tiktok(stack: Stack) -> None:
    stack.write_config(destinations_config(mode="shadow"))
    stack.start_intake()
    stack.start_worker()
    audiences_before = set(stack.sandbox.state()["audiences"])

    post_all(stack, [legacy("Legacy Added", i) for i in range(5)] + [legacy("Legacy Removed", 9)]
             + [engage("Audience Entered", i, None, key="new_vips") for i in range(3)])
    settle(stack)

    assert stack.sandbox.calls() == []  # not one mapping call
    assert set(stack.sandbox.state()["audiences"]) == audiences_before  # nothing created
    assert stack.sandbox.members(LEGACY_AUDIENCE) == []
    code, out, err = stack.cli("shadow", "report", "--since", "1h", "--json")
    assert code == 0, err
    counts = {(a["audience_id"], a["adds"], a["removes"]) for a in orjson.loads(out)["audiences"]}
    assert counts == {(LEGACY_AUDIENCE, 5, 1), ("would-create:new_vips", 3, 0)}
    code, out, _ = stack.cli("stats", "--json")
    assert code == 0
    audiences = orjson.loads(out)["audiences"]
    assert audiences and {a["delivered_members"] for a in audiences} == {0}  # membership is not recorded


def test_resync_re_sends_an_audience_tiktok_lost(stack: Stack) -> None:
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="vips", audience_id=AUDIENCE)
    stack.start_intake()
    stack.start_worker()
    post_all(stack, [engage("Audience Entered", i, AUDIENCE, key="vips") for i in range(30)])
    settle(stack)
    post_all(stack, [engage("Audience Exited", i, AUDIENCE, key="vips") for i in range(10)])
    settle(stack)
    expected = sorted(email_member(i) for i in range(10, 30))
    assert stack.sandbox.members(AUDIENCE) == expected

    # TikTok loses the audience's members: the same audience id, empty.
    stack.sandbox.reset()
    stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name="vips", audience_id=AUDIENCE)
    code, out, err = stack.cli("audiences", "resync", AUDIENCE, "--dry-run")
    assert code == 0, err
    assert "20 current members recorded, would enqueue 20 adds" in out
    assert stack.sandbox.members(AUDIENCE) == []

    code, out, err = stack.cli("audiences", "resync", AUDIENCE)
    assert code == 0, err
    assert "enqueued 20 adds" in out
    settle(stack)
    assert stack.sandbox.members(AUDIENCE) == expected
    calls = [c for c in stack.sandbox.calls() if c["code"] == 0]
    assert sum(c["rows"] for c in calls) == 20 and {c["action"] for c in calls} == {"add"}

    # The resync is recorded like any delivery: the audience's size holds, a repeat re-sends the same members.
    code, out, _ = stack.cli("audiences", "resync", AUDIENCE, "--json")
    (entry,) = orjson.loads(out)["targets"]
    assert (entry["members"], entry["adds"], entry["without_identifiers"]) == (20, 20, 0)
    settle(stack)
    assert stack.sandbox.members(AUDIENCE) == expected
