"""What ``tiktok-audiences stats --watch`` shows, read from Redis at each refresh.

The view adds to ``stats`` (worker.operator.stats) what only changes over time: TikTok calls per second per access
token, measured from the limiter's count of granted slots between two samples (every TikTok call takes one),
the cooldown a throttle left on each token, and the newest dead batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from core.destinations import ConfigError, DestinationsFile
from worker import keys
from worker.ledger import Ledger
from worker.operator.stats import collect

RECENT_DEAD = 5


@dataclass(frozen=True)
class TokenCalls:
    """One access token as the fleet-wide limiter sees it (tokens are named by their non-reversible id)."""

    token_id: str
    destinations: tuple[str, ...]  # the destinations using it, when the destinations file tells
    calls_per_second: float | None  # None until a second sample gives a rate
    cooldown_seconds: float  # > 0 while every worker holds back after TikTok throttled the token


@dataclass(frozen=True)
class Snapshot:
    stats: dict[str, Any]  # worker.operator.stats.collect's document
    tokens: list[TokenCalls]
    recent_dead: list[dict[str, Any]]  # ledger records, newest first
    rate_limit_qps: float
    taken_at: float  # epoch seconds
    error: str | None = None  # set instead of the rest when Redis did not answer


def token_destinations(destinations: DestinationsFile | None) -> dict[str, tuple[str, ...]]:
    """Token id -> ids of the destinations that use it. A destination whose token cannot be read here (its
    variable is not set in the operator's shell) is left out: the view then names its token by id only."""
    found: dict[str, list[str]] = {}
    for destination in destinations.destinations if destinations else []:
        try:
            found.setdefault(destination.token_id(), []).append(destination.id)
        except ConfigError:
            continue
    return {token: tuple(sorted(ids)) for token, ids in found.items()}


def _token_of(key: bytes | str, key_of: Callable[[str], str]) -> str:
    """The token id in a per-token key (``tta:cooldown:{<token id>}``)."""
    text = key.decode() if isinstance(key, bytes) else key
    return text.removeprefix(key_of("").removesuffix("{}")).strip("{}")


@dataclass
class Sampler:
    """Takes snapshots; keeps the previous call counts so that each snapshot has a rate."""

    client: redis.Redis
    ledger: Ledger
    rate_limit_qps: float
    destinations_by_token: dict[str, tuple[str, ...]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    # Per token: when it was last sampled (``clock``) and its count of granted slots then.
    _previous: dict[str, tuple[float, int]] = field(default_factory=dict, init=False)

    def sample(self) -> Snapshot:
        try:
            stats = collect(self.client, self.ledger)
            tokens = self._tokens()
            dead = [record.to_json() for record in self.ledger.list(status="dead", limit=RECENT_DEAD)]
        except redis.RedisError as exc:
            return Snapshot({}, [], [], self.rate_limit_qps, self.wall_clock(),
                            error=f"cannot read from Redis: {type(exc).__name__}: {exc}")
        return Snapshot(stats, tokens, dead, self.rate_limit_qps, self.wall_clock())

    def _tokens(self) -> list[TokenCalls]:
        seen = {_token_of(key, key_of) for key_of in (keys.rate_calls, keys.cooldown)
                for key in self.client.scan_iter(match=key_of("*"), count=1000)}
        names = sorted(seen | set(self.destinations_by_token))
        pipe = self.client.pipeline(transaction=False)
        for token in names:
            pipe.get(keys.rate_calls(token))
            pipe.pttl(keys.cooldown(token))
        answers = pipe.execute()
        now = self.clock()
        tokens = []
        for index, token in enumerate(names):
            count, cooldown_ms = int(answers[2 * index] or 0), int(answers[2 * index + 1])
            tokens.append(TokenCalls(token, self.destinations_by_token.get(token, ()),
                                     self._rate(token, now, count), max(cooldown_ms, 0) / 1000))
        return tokens

    def _rate(self, token: str, now: float, count: int) -> float | None:
        previous = self._previous.get(token)
        self._previous[token] = (now, count)
        if previous is None or now <= previous[0]:
            return None
        return max(count - previous[1], 0) / (now - previous[0])
