"""The client libraries people already run, unmodified, against ``serve`` with a real Redis, Celery workers and
the sandbox: Segment's ``segment-analytics-python`` and RudderStack's ``rudder-sdk-python``.

Each scenario ends with the sandbox holding exactly the membership the events' timestamps describe, whatever
order the library delivered them in (it re-queues a refused batch at the end of its queue, resends after an
error, and the events themselves are handed to it shuffled, as from concurrent sources, with resends).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support.events import email_member, wait_until
from tests.support.stack import ADVERTISER, WRITE_KEY, Stack, destinations_config

pytestmark = pytest.mark.integration

LIBRARIES = ["segment", "rudderstack"]
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def email(user: int) -> str:
    return f"user{user}@example.com"


class ErrorsSeen:
    """A library's ``on_error`` callback: what it reported, and for how many events."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.events = 0
        self._lock = threading.Lock()

    def __call__(self, error: BaseException, batch: list[Any]) -> None:
        with self._lock:
            self.errors.append(error)
            self.events += len(batch)


def make_client(library: str, stack: Stack, on_error: ErrorsSeen, *, write_key: str = WRITE_KEY,
                gzip: bool = True, upload_size: int = 100) -> Any:
    """The library's own client, configured only as its documentation says: a write key and a host. Its
    in-memory queue holds every call a test makes (the default, 10,000, drops the excess: each library's
    ``track`` then answers ``(False, msg)``, which :meth:`Call.send` refuses)."""
    if library == "segment":
        from segment.analytics import Client as SegmentClient

        return SegmentClient(write_key, host=stack.intake_url, gzip=gzip, on_error=on_error,
                             upload_interval=0.05, upload_size=upload_size, max_retries=10,
                             max_queue_size=100_000)
    from rudderstack.analytics import Client as RudderClient

    return RudderClient(write_key, host=stack.intake_url, gzip=gzip, on_error=on_error,
                        upload_interval=0.05, upload_size=upload_size, max_retries=10, max_queue_size=100_000)


def close(client: Any) -> None:
    client.flush()
    client.join()


@dataclass
class Audiences:
    """Seeded TikTok audiences, each an Engage audience, and the membership events describe per user."""

    stack: Stack
    count: int
    ids: list[str] = field(default_factory=list)
    latest: dict[tuple[str, int], tuple[datetime, bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for n in range(self.count):
            audience = f"32000000000000000{n:02d}"
            self.stack.sandbox.seed_audience(advertiser_id=ADVERTISER, name=f"aud-{audience}", audience_id=audience)
            self.ids.append(audience)

    @staticmethod
    def key(audience: str) -> str:
        return f"k{audience}"

    def personas(self, audience: str) -> dict[str, Any]:
        return {"computation_key": self.key(audience), "computation_class": "audience",
                "external_audience_id": audience, "audience_settings": {"advertiserId": ADVERTISER}}

    def note(self, audience: str, user: int, when: datetime, member: bool) -> None:
        known = self.latest.get((audience, user))
        if known is None or when > known[0]:
            self.latest[(audience, user)] = (when, member)

    def expected(self, audience: str) -> set[str]:
        return {email_member(user) for (aud, user), (_, member) in self.latest.items() if aud == audience and member}

    def wait_delivered_exactly(self) -> None:
        wait_until(self.stack.backlog_settled, 90, interval=0.3, message="every operation delivered")
        for audience in self.ids:
            got = set(self.stack.sandbox.members(audience))
            want = self.expected(audience)
            assert got == want, (audience, f"{len(got - want)} extra, {len(want - got)} missing")


@dataclass(frozen=True)
class Call:
    """One track call as a library user makes it."""

    audience: str
    user: int
    when: datetime
    member: bool
    message_id: str

    def send(self, client: Any, audiences: Audiences) -> None:
        key = audiences.key(self.audience)
        queued, _ = client.track(
            user_id=f"u{self.user}", event="Audience Entered" if self.member else "Audience Exited",
            properties={"audience_key": key, key: self.member},
            context={"personas": audiences.personas(self.audience), "traits": {"email": email(self.user)}},
            timestamp=self.when, message_id=self.message_id)
        assert queued, "the library's queue dropped the call"


def histories(audiences: Audiences, users: range, rng: random.Random, start: datetime = T0) -> list[Call]:
    """Per (audience, user) one to four alternating entries and exits, a second apart, all noted."""
    calls = []
    for audience in audiences.ids:
        for user in users:
            member = True
            for step in range(rng.randint(1, 4)):
                when = start + timedelta(seconds=step, milliseconds=user % 1000)
                calls.append(Call(audience, user, when, member, f"{audience}-{user}-{step}-{start.timestamp()}"))
                audiences.note(audience, user, when, member)
                member = not member
    return calls


@pytest.fixture
def syncing_stack(stack: Stack) -> Iterator[Stack]:
    config = destinations_config()
    config["destinations"][0]["mappings"].append({"action": "syncAudience", "subscribe": 'type = "identify"'})
    stack.write_config(config)
    stack.start_worker()
    stack.start_intake()
    yield stack


@pytest.mark.parametrize("library", LIBRARIES)
def test_each_operation_carries_the_time_and_message_id_the_library_sent(library: str, stack: Stack) -> None:
    from worker import keys
    from worker.operations import decode_entry
    from worker.queue import ENTRY_FIELD

    stack.start_intake()  # no worker: the operations stay in their stream to be read
    audiences = Audiences(stack, 1)
    [audience] = audiences.ids
    errors = ErrorsSeen()
    client = make_client(library, stack, errors)
    # Python datetimes as callers pass them, with microseconds and an offset; Segment's library writes
    # milliseconds, RudderStack's microseconds: both are read to the millisecond, sub-milliseconds dropped.
    sent = [Call(audience, 1, T0 + timedelta(microseconds=250_999), True, "m-enter"),
            Call(audience, 1, (T0 + timedelta(seconds=5)).astimezone(timezone(timedelta(hours=2))), False, "m-exit")]
    for call in sent:
        call.send(client, audiences)
    close(client)

    assert errors.errors == []
    target = f"tiktok-main|{ADVERTISER}|{audience}"
    stored = [op for _, fields in stack.redis.xrange(keys.stream(target))
              for op in decode_entry(fields[ENTRY_FIELD.encode()])]
    assert [(op.event_ms, op.message_id) for op in stored] == [
        (int(T0.timestamp() * 1000) + 250, "m-enter"), (int(T0.timestamp() * 1000) + 5000, "m-exit")]


@pytest.mark.parametrize("library", LIBRARIES)
def test_shuffled_track_calls_with_resends_end_as_their_timestamps_say(library: str, syncing_stack: Stack) -> None:
    rng = random.Random(10)
    audiences = Audiences(syncing_stack, 3)
    calls = histories(audiences, range(3000), rng)
    calls += rng.sample(calls, len(calls) // 10)  # resends: the same message, the same time
    rng.shuffle(calls)
    errors = ErrorsSeen()
    client = make_client(library, syncing_stack, errors, gzip=True)
    for call in calls:
        call.send(client, audiences)
    close(client)

    assert errors.errors == []
    audiences.wait_delivered_exactly()


@pytest.mark.parametrize("library", LIBRARIES)
def test_identify_traits_sync_membership_as_each_library_places_them(library: str, syncing_stack: Stack) -> None:
    # Segment's library sends identify traits at the top level; RudderStack's puts them in context.traits.
    audiences = Audiences(syncing_stack, 1)
    [audience] = audiences.ids
    key = audiences.key(audience)
    errors = ErrorsSeen()
    client = make_client(library, syncing_stack, errors, gzip=False)
    for user in range(60):
        for step, member in enumerate((True, user % 3 != 0)):
            when = T0 + timedelta(seconds=step)
            client.identify(user_id=f"u{user}", traits={"email": email(user), key: member},
                            context={"personas": audiences.personas(audience)}, timestamp=when)
            audiences.note(audience, user, when, member)
    close(client)

    assert errors.errors == []
    assert int(syncing_stack.redis.hget("tta:rejected", "invalid_membership") or 0) == 0
    audiences.wait_delivered_exactly()


@pytest.mark.parametrize("library", LIBRARIES)
def test_an_error_answer_reaches_the_librarys_error_callback(library: str, syncing_stack: Stack) -> None:
    audiences = Audiences(syncing_stack, 1)
    errors = ErrorsSeen()
    client = make_client(library, syncing_stack, errors, write_key="not-a-write-key")
    Call(audiences.ids[0], 1, T0, True, "m-1").send(client, audiences)
    close(client)

    [error] = errors.errors
    assert errors.events == 1
    # Both libraries build their error from the answer's "code" and "message" (RudderStack's would raise a
    # KeyError on any other shape, retry it ten times and drop the batch).
    assert (error.status, error.code) == (401, "unauthorized")  # type: ignore[attr-defined]
    assert error.message == "a valid write key is required"  # type: ignore[attr-defined]


def test_rudderstacks_four_megabyte_batches_are_taken(syncing_stack: Stack) -> None:
    from rudderstack.analytics import Client as RudderClient

    audiences = Audiences(syncing_stack, 1)
    [audience] = audiences.ids
    errors = ErrorsSeen()
    # A long upload interval lets the library's uploader gather every event into one batch (it batches up to
    # 4 MB; with the 500 KB limit Segment's API has, that batch was refused with 413 and lost).
    client = RudderClient(WRITE_KEY, host=syncing_stack.intake_url, gzip=False, on_error=errors,
                          upload_size=1000, upload_interval=5)
    filler = "x" * 2000
    for user in range(1000):
        client.track(user_id=f"u{user}", event="Audience Entered",
                     properties={"audience_key": audiences.key(audience), "note": filler},
                     context={"personas": audiences.personas(audience), "traits": {"email": email(user)}},
                     timestamp=T0)
        audiences.note(audience, user, T0, True)
    close(client)
    assert errors.errors == []
    assert syncing_stack.redis.hlen("tta:rejected") == 0
    audiences.wait_delivered_exactly()


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_redis_outage_mid_stream_loses_and_misorders_nothing(library: str, syncing_stack: Stack) -> None:
    audiences = Audiences(syncing_stack, 2)
    errors = ErrorsSeen()
    client = make_client(library, syncing_stack, errors)
    first = [Call(a, u, T0, True, f"in-{a}-{u}") for a in audiences.ids for u in range(200)]
    for call in first:
        call.send(client, audiences)
        audiences.note(call.audience, call.user, call.when, True)
    client.flush()
    audiences.wait_delivered_exactly()

    syncing_stack.redis_server.stop()
    outage_over = threading.Timer(4.0, syncing_stack.redis_server.start)
    outage_over.start()
    try:
        # Sent while Redis is away: intake answers 503 with Retry-After; Segment's library re-queues the refused
        # batch behind everything queued since (exits arrive after the re-entries that follow them),
        # RudderStack's retries it in place.
        later: list[Call] = []
        for audience in audiences.ids:
            later += [Call(audience, u, T0 + timedelta(seconds=1), False, f"out-{audience}-{u}") for u in range(100)]
            later += [Call(audience, u, T0 + timedelta(seconds=2), True, f"back-{audience}-{u}") for u in range(40)]
        for call in later:
            call.send(client, audiences)
            audiences.note(call.audience, call.user, call.when, call.member)
        close(client)
    finally:
        outage_over.join()
    # Redis came back empty (no persistence in tests): the seeded audiences are known to the sandbox only.
    assert errors.errors == []
    assert answers(syncing_stack, 503) > 0  # the library did meet the outage
    audiences.wait_delivered_exactly()


def answers(stack: Stack, status: int) -> float:
    """How many /v1/batch requests intake answered with ``status`` (its Prometheus counter)."""
    import urllib.request

    with urllib.request.urlopen(stack.intake_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    prefix = f'tta_intake_requests_total{{route="/v1/batch",status="{status}"}} '
    return sum(float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix))
