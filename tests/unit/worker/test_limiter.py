"""The fleet-wide limiter keeps calls per token under the configured QPS.

Runs against fakeredis (with its Lua support) always, and also against a real Redis server (7.0 or newer)
when ``TTA_TEST_REDIS_URL`` points at one, e.g. ``redis://127.0.0.1:6379/15``. Every test uses its own random
token id, so a real server's other data is left alone.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import fakeredis
import pytest
import redis

from worker import keys
from worker.limiter import SAFETY_MARGIN, RateLimiter

MICROS = 1_000_000
RedisFactory = Callable[[], redis.Redis]


@pytest.fixture(params=["fakeredis", "real-redis"])
def connect(request: pytest.FixtureRequest) -> Iterator[RedisFactory]:
    """Makes one client per simulated worker, all on the same server."""
    clients: list[redis.Redis] = []
    if request.param == "fakeredis":
        server = fakeredis.FakeServer()

        def factory() -> redis.Redis:
            client = fakeredis.FakeRedis(server=server)
            clients.append(client)
            return client

    else:
        url = os.environ.get("TTA_TEST_REDIS_URL")
        if not url:
            pytest.skip("set TTA_TEST_REDIS_URL to run against a real Redis")

        def factory() -> redis.Redis:
            client = redis.Redis.from_url(url)
            clients.append(client)
            return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def token_id() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_the_first_call_is_granted_and_the_next_waits_one_interval(
    connect: RedisFactory, token_id: str
) -> None:
    limiter = RateLimiter(connect(), qps=5)
    assert limiter.acquire(token_id) == 0.0
    wait = limiter.acquire(token_id)
    assert 0 < wait <= (1 + SAFETY_MARGIN) / 5


def test_a_refusal_records_nothing(connect: RedisFactory, token_id: str) -> None:
    limiter = RateLimiter(connect(), qps=1)
    assert limiter.acquire(token_id) == 0.0
    waits = [limiter.acquire(token_id) for _ in range(5)]
    # Asking again does not push the slot further away: the wait only shrinks as time passes.
    assert all(0 < w <= 1 + SAFETY_MARGIN for w in waits)
    assert waits == sorted(waits, reverse=True)


def test_the_slot_comes_back_after_the_wait(connect: RedisFactory, token_id: str) -> None:
    limiter = RateLimiter(connect(), qps=20)
    assert limiter.acquire(token_id) == 0.0
    wait = limiter.acquire(token_id)
    assert wait > 0
    time.sleep(wait + 0.005)
    assert limiter.acquire(token_id) == 0.0


def test_reserved_slots_are_handed_out_one_interval_apart(connect: RedisFactory, token_id: str) -> None:
    limiter = RateLimiter(connect(), qps=1)
    answers = [limiter.reserve(token_id, ahead=3.5) for _ in range(6)]
    granted = [wait for ok, wait in answers if ok]
    # Now, then 1, 2 and 3 intervals ahead (less the time the calls took); the fifth would be 4 ahead.
    interval = 1 + SAFETY_MARGIN
    assert len(granted) == 4
    assert granted[0] == 0.0
    assert all(interval - 0.1 < later - earlier <= interval for earlier, later in itertools.pairwise(granted))
    refused = [wait for ok, wait in answers if not ok]
    assert len(refused) == 2 and all(3.5 < w <= 4 * interval for w in refused)


def test_a_cooldown_is_never_reserved_through(connect: RedisFactory, token_id: str) -> None:
    limiter = RateLimiter(connect(), qps=10)
    limiter.throttle(token_id, 0.2)
    granted, wait = limiter.reserve(token_id, ahead=5.0)
    assert not granted
    assert 0.1 < wait <= 0.2


def test_tokens_are_limited_separately(connect: RedisFactory, token_id: str) -> None:
    limiter = RateLimiter(connect(), qps=1)
    assert limiter.acquire(token_id) == 0.0
    assert limiter.acquire(token_id + "-other") == 0.0


def test_the_keys_expire_on_their_own(connect: RedisFactory, token_id: str) -> None:
    client = connect()
    limiter = RateLimiter(client, qps=5)
    limiter.acquire(token_id)
    limiter.throttle(token_id, 1.0)
    assert 0 < client.pttl(keys.rate_limit(token_id)) <= 1000 * (1 + SAFETY_MARGIN) / 5 + 1
    assert 0 < client.pttl(keys.cooldown(token_id)) <= 1000


def test_three_workers_never_exceed_qps_in_any_second(connect: RedisFactory, token_id: str) -> None:
    qps = 5
    grants: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 2.0

    def worker() -> None:
        limiter = RateLimiter(connect(), qps=qps)  # each worker its own connection, as across processes
        while time.monotonic() < deadline:
            decision = limiter.decide(token_id)
            if decision.wait == 0:
                with lock:
                    grants.append(decision.server_time_us)
            else:
                time.sleep(decision.wait)  # all three wake together and race for the slot

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    grants.sort()
    # Any window [t, t + 1 s) holds at most qps grants <=> grant i and grant i + qps are at least 1 s apart.
    for first, later in zip(grants, grants[qps:], strict=False):
        assert later - first >= MICROS, f"{qps + 1} grants within {(later - first) / MICROS:.3f} s"
    # ...and the limiter still lets the full rate through: ~2 s x 5/s (+1 for the first call).
    assert 2 * qps - 3 <= len(grants) <= 2 * qps + 1


def test_calls_whose_delays_after_their_slots_vary_still_fit_the_rate_in_every_second(
        connect: RedisFactory, token_id: str) -> None:
    # TikTok counts the calls it receives per second. A call reaches it some time after its slot, and that
    # time varies (a round trip, the body's encoding, a busy event loop): here by up to 40 ms, on slots
    # reserved back to back for 3 s at 10 calls/s, every slot's phase against the second boundary tried.
    qps = 10
    limiter = RateLimiter(connect(), qps=qps)
    decisions = [limiter.decide(token_id, ahead=10.0) for _ in range(3 * qps)]
    assert all(d.granted for d in decisions)
    slots = [d.server_time_us + round(d.wait * MICROS) for d in decisions]
    slots = [slot - slots[0] for slot in slots]
    for phase in range(0, MICROS, 7_000):
        for late in range(len(slots)):  # one call 40 ms later than the others
            arrivals = [slot + phase + (40_000 if i == late else 0) for i, slot in enumerate(slots)]
            per_second: dict[int, int] = {}
            for at in arrivals:
                per_second[at // MICROS] = per_second.get(at // MICROS, 0) + 1
            assert max(per_second.values()) <= qps, (phase, late)
    # ...while using at least 90 % of the rate.
    assert (len(slots) - 1) / ((slots[-1] - slots[0]) / MICROS) >= 0.9 * qps


def test_throttle_makes_every_worker_wait(connect: RedisFactory, token_id: str) -> None:
    one, other = RateLimiter(connect(), qps=5), RateLimiter(connect(), qps=5)
    one.throttle(token_id, 2.0)
    assert 1.5 < one.acquire(token_id) <= 2.0
    assert 1.5 < other.acquire(token_id) <= 2.0


def test_calls_resume_when_the_cooldown_ends(connect: RedisFactory, token_id: str) -> None:
    limiter = RateLimiter(connect(), qps=5)
    limiter.throttle(token_id, 0.05)
    wait = limiter.acquire(token_id)
    assert 0 < wait <= 0.05
    time.sleep(wait + 0.01)
    assert limiter.acquire(token_id) == 0.0


def test_throttle_extends_but_never_shortens_a_cooldown(connect: RedisFactory, token_id: str) -> None:
    limiter = RateLimiter(connect(), qps=5)
    limiter.throttle(token_id, 1.0)
    limiter.throttle(token_id, 3.0)
    assert 2.5 < limiter.acquire(token_id) <= 3.0
    limiter.throttle(token_id, 0.5)
    assert 2.5 < limiter.acquire(token_id) <= 3.0


def test_the_wait_is_the_longer_of_the_rate_wait_and_the_cooldown(
    connect: RedisFactory, token_id: str
) -> None:
    limiter = RateLimiter(connect(), qps=0.5)  # one call every 2 s
    assert limiter.acquire(token_id) == 0.0
    limiter.throttle(token_id, 0.5)
    assert 1.5 < limiter.acquire(token_id) <= 2 * (1 + SAFETY_MARGIN)  # the rate limit is the longer wait
    limiter.throttle(token_id, 5.0)
    assert 4.5 < limiter.acquire(token_id) <= 5.0  # now the cooldown is


def test_a_non_positive_throttle_does_nothing(connect: RedisFactory, token_id: str) -> None:
    limiter = RateLimiter(connect(), qps=5)
    limiter.throttle(token_id, 0)
    limiter.throttle(token_id, -1)
    assert limiter.acquire(token_id) == 0.0


@pytest.mark.parametrize("qps", [0, -1.0])
def test_qps_must_be_positive(qps: float) -> None:
    with pytest.raises(ValueError):
        RateLimiter(fakeredis.FakeRedis(), qps=qps)
