"""Fleet-wide rate limiting per access token, shared through Redis.

TikTok counts calls per access token, not per worker, so every worker asks the same Redis keys before calling.
Two rules, checked together by one Lua script (``limiter.lua``) so the answer is atomic across the fleet:

* GCRA with a burst of one: calls are spaced at least ``(1 + SAFETY_MARGIN) / qps`` apart, so no second ever
  holds more than ``qps`` calls however many workers ask (a bucket allowing bursts could land a whole burst in
  one second). The margin is for the way from a slot to TikTok: a call leaves a little after its slot (a
  Redis round trip, the body's encoding, a busy event loop), by an amount that varies from call to call, and
  TikTok counts the calls it receives in each second. With slots exactly ``1/qps`` apart, one slot just before
  a second's boundary that left a millisecond later than the next ones would make ``qps + 1`` calls in that
  second: a throttle. Spaced by ``(1 + margin) / qps``, any ``qps + 1`` slots span ``1 + margin`` seconds,
  so calls stay within the rate as long as their delays differ by less than the margin, at a cost of
  ``margin / (1 + margin)`` of the rate (5 % for 50 ms).
  A caller may also *reserve* a slot a little ahead (:meth:`RateLimiter.reserve`) and wait for it, instead of
  being refused and asking again: many drains contending for one token then take turns in one round trip
  each, rather than polling.
* A cooldown set by :meth:`RateLimiter.throttle` after TikTok answers "too many requests": until it expires,
  no worker gets a slot.

Only the Redis server's clock is used, so hosts with skewed clocks still share one timeline. The client is the
synchronous ``redis.Redis``: the worker asks from its drain loop, between batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis import Redis

from worker import keys, lua, metrics

_SCRIPT = lua.source("limiter")
_MICROS = 1_000_000
# Seconds added to every ``qps`` calls' span: how much the delays between slots and TikTok may differ.
SAFETY_MARGIN = 0.05


@dataclass(frozen=True, slots=True)
class Decision:
    """The limiter's answer to one request for a slot."""

    wait: float  # granted: seconds until the caller's slot; refused: seconds to wait before asking again
    server_time_us: int  # the Redis server time the decision was taken at, in microseconds
    granted: bool = True  # whether a slot was recorded for the caller


class RateLimiter:
    """At most ``qps`` calls per second per token across every worker sharing ``redis``."""

    def __init__(self, redis: Redis, qps: float) -> None:
        if not qps > 0:
            raise ValueError(f"qps must be positive, not {qps!r}")
        self._redis = redis
        # Rounded up so that spacing * qps >= 1 second + the margin: rounding down would eat into the margin.
        self._interval_us = math.ceil(_MICROS * (1 + SAFETY_MARGIN) / qps)
        self._script = redis.register_script(_SCRIPT)

    def acquire(self, token_id: str) -> float:
        """0.0 if a call may be made now (and it is counted), else the seconds to wait (nothing counted)."""
        return self.decide(token_id).wait

    def reserve(self, token_id: str, ahead: float) -> tuple[bool, float]:
        """(True, seconds): a slot that many seconds from now (at most ``ahead``) is the caller's, who must wait
        that long before calling. (False, seconds): refused (no free slot that soon, or a cooldown is on);
        ask again in that many seconds."""
        decision = self.decide(token_id, ahead)
        return decision.granted, decision.wait

    def decide(self, token_id: str, ahead: float = 0.0) -> Decision:
        """Like :meth:`acquire` (or :meth:`reserve` with ``ahead``), also telling the server time of the
        decision (for metrics and tests)."""
        wait_us, now_us, granted = self._script(
            keys=[keys.rate_limit(token_id), keys.cooldown(token_id), keys.rate_calls(token_id)],
            args=[self._interval_us, max(0, int(ahead * _MICROS))],
        )
        return Decision(wait=int(wait_us) / _MICROS, server_time_us=int(now_us), granted=bool(granted))

    def throttle(self, token_id: str, seconds: float) -> None:
        """Stop every worker calling with this token for ``seconds``; an existing longer cooldown is kept."""
        metrics.throttled()
        millis = math.ceil(seconds * 1000)
        if millis <= 0:
            return
        key = keys.cooldown(token_id)
        # Create the key if absent, else only push its expiry later (PEXPIRE GT, Redis >= 7): one transaction,
        # so two workers throttling at once end with the later of their two deadlines.
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, b"1", px=millis, nx=True)
            pipe.pexpire(key, millis, gt=True)
            pipe.execute()
