"""Event time decides membership: Engage entries and exits with Segment's timestamps, posted
shuffled by concurrent senders with a tenth of them resent, end with the membership their times describe."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.events import email_member, wait_until
from tests.support.stack import ADVERTISER, Stack

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_shuffled_concurrent_arrival_with_resends_ends_as_the_timestamps_say(stack: Stack) -> None:
    rng = random.Random(4000)
    audiences = [f"33000000000000000{n:02d}" for n in range(2)]
    for audience in audiences:
        stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name=f"aud-{audience}", audience_id=audience)
    stack.start_worker()
    stack.start_intake()

    events: list[dict[str, Any]] = []
    latest: dict[tuple[str, int], bool] = {}
    for audience in audiences:
        for user in range(4000):
            member = True
            for step in range(rng.randint(1, 4)):  # entries and exits alternate, a minute apart
                events.append({
                    "type": "track", "event": "Audience Entered" if member else "Audience Exited",
                    "userId": f"u{user}", "messageId": f"{audience}-{user}-{step}",
                    "timestamp": iso(T0 + timedelta(minutes=step)),
                    "properties": {"audience_key": f"k{audience}", f"k{audience}": member},
                    "context": {"traits": {"email": f"user{user}@example.com"},
                                "personas": {"computation_key": f"k{audience}", "external_audience_id": audience,
                                             "audience_settings": {"advertiserId": ADVERTISER}}},
                })
                latest[(audience, user)] = member
                member = not member
    events += rng.sample(events, len(events) // 10)  # resent after a lost answer: the same event again
    rng.shuffle(events)

    def post(chunk: list[dict[str, Any]]) -> None:
        status, body = stack.post("/v1/batch", {"batch": chunk})
        assert (status, body["rejected"]) == (200, 0), body

    with ThreadPoolExecutor(8) as senders:  # concurrent requests: no order between them
        list(senders.map(post, [events[i:i + 100] for i in range(0, len(events), 100)]))

    wait_until(stack.backlog_settled, 120, interval=0.3, message="every operation delivered")
    for audience in audiences:
        expected = {email_member(user) for (aud, user), member in latest.items() if aud == audience and member}
        got = set(stack.sandbox.members(audience))
        assert got == expected, (audience, f"{len(got - expected)} extra, {len(expected - got)} missing")
