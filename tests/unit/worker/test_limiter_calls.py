"""The limiter counts the slots it grants per token, so operators can read TikTok calls per second fleet-wide
(``stats --watch``): every call takes a slot; a refusal is not a call."""

from __future__ import annotations

import fakeredis

from worker import keys
from worker.limiter import RateLimiter


def _count(client: fakeredis.FakeRedis, token_id: str) -> int:
    return int(client.get(keys.rate_calls(token_id)) or 0)


def test_granted_slots_are_counted_and_refusals_are_not() -> None:
    client = fakeredis.FakeRedis()
    limiter = RateLimiter(client, qps=10)
    assert limiter.acquire("token-a") == 0.0
    assert limiter.acquire("token-a") > 0  # refused: the next slot is 0.1 s away
    granted, _ = limiter.reserve("token-a", ahead=1.0)
    assert granted
    assert _count(client, "token-a") == 2


def test_tokens_are_counted_apart_and_a_cooldown_grants_nothing() -> None:
    client = fakeredis.FakeRedis()
    limiter = RateLimiter(client, qps=10)
    limiter.acquire("token-a")
    limiter.throttle("token-b", 5)
    granted, _ = limiter.reserve("token-b", ahead=10.0)
    assert not granted
    assert _count(client, "token-a") == 1
    assert _count(client, "token-b") == 0
