"""Throttle cooldowns as an operator sees them: how long each destination's token still rests, when its lane
is due again, and lifting a cooldown by hand.

A throttle answer rests the whole token (every worker holds back, worker.policy) for at most
``TTA_THROTTLE_COOLDOWN_MAX``. An operator who knows better (TikTok's quota was raised, the throttle came from
another app sharing the token and is over) lifts it: the cooldown key goes and the destination's lane is made
due now, so the next scheduler tick drains it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from core.destinations import ConfigError, DestinationsFile
from worker import keys


@dataclass(frozen=True, slots=True)
class Cooldown:
    destination: str
    seconds_left: float  # 0: not cooling down
    lane_due_at: float | None  # when the lane's next drain is due (None: nothing due)


def cooldowns(client: redis.Redis, destinations: DestinationsFile) -> list[Cooldown]:
    """Each configured destination's cooldown and its lane's due time, in one round trip. A destination
    whose token cannot be read (its variable unset) is left out: it cannot have made a call to be throttled."""
    named: list[tuple[str, str]] = []
    for destination in destinations.destinations:
        try:
            named.append((destination.id, destination.token_id()))
        except ConfigError:
            continue
    pipe = client.pipeline(transaction=False)
    for destination_id, token in named:
        pipe.pttl(keys.cooldown(token))
        pipe.zscore(keys.READY, destination_id)
    answers = pipe.execute()
    out = []
    for index, (destination_id, _) in enumerate(named):
        ttl_ms, due = answers[2 * index], answers[2 * index + 1]
        out.append(Cooldown(destination_id, max(0, int(ttl_ms)) / 1000, None if due is None else float(due)))
    return out


def lift(client: redis.Redis, destination_id: str, token_id: str) -> float:
    """End the token's cooldown and make the destination's lane due now; returns the seconds it had left
    (0: it was not cooling down)."""
    pipe = client.pipeline(transaction=True)
    pipe.pttl(keys.cooldown(token_id))
    pipe.delete(keys.cooldown(token_id))
    pipe.zadd(keys.READY, {destination_id: time.time()})
    ttl_ms, _, _ = pipe.execute()
    return max(0, int(ttl_ms)) / 1000
