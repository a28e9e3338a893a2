"""Everything a drain needs, built once per worker process (after the fork: sockets do not survive one).

The collaborators a drain calls through a narrow surface (the destinations, TikTok, the rate limiter) are typed
by what the delivery code uses of them, so a test can hand in a double of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from redis import Redis

from core.destinations import Destination, DestinationsProvider
from core.redis_client import DELIVERY, redis_from_url
from core.settings import Settings
from worker.audiences import AudienceApi
from worker.ledger import Ledger
from worker.limiter import RateLimiter
from worker.membership import Membership
from worker.operations import Action
from worker.tiktok.client import Response, TikTokClient
from worker.tiktok.wire import AudienceRow

log = structlog.get_logger(__name__)

class Destinations(Protocol):
    """Where a drain looks up the destination of a lane (its token, mode and advertisers)."""

    def get(self, destination_id: str) -> Destination | None: ...


class DeliveryApi(AudienceApi, Protocol):
    """The part of TikTok's API a drain calls: audiences (created, checked, listed) and the mapping requests."""

    async def send_rows(self, token: str, advertiser_ids: Sequence[str], action: Action,
                        rows: Sequence[AudienceRow]) -> Response: ...

    async def close(self) -> None: ...


class CallLimiter(Protocol):
    """The fleet-wide pace of calls per token (worker.limiter)."""

    def acquire(self, token_id: str) -> float: ...

    def reserve(self, token_id: str, ahead: float) -> tuple[bool, float]: ...

    def throttle(self, token_id: str, seconds: float) -> None: ...


@dataclass
class WorkerContext:
    """What drains and the createAudience consumer work with in one worker process: the Settings of the
    command that started it, its Redis connection, the destinations, TikTok's client, the rate limiter, the
    ledger and the membership record. :meth:`build` makes the real ones; tests give doubles."""

    settings: Settings
    redis: Redis
    destinations: Destinations
    client: DeliveryApi
    limiter: CallLimiter
    ledger: Ledger
    membership: Membership
    # Per target, the TikTok audience id its batches go to, once resolved (created, or its ownership
    # confirmed): neither answer ever changes, so this process skips the Redis look-up for it afterwards.
    audience_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, client: Redis | None = None,
              destinations: Destinations | None = None) -> WorkerContext:
        # Timeouts: a Redis that vanishes without closing the connection must fail a drain, not hang it until
        # Celery's hard time limit (the drain's target lock has expired long before that).
        conn = client or redis_from_url(settings.redis_url, DELIVERY)
        return cls(
            settings=settings,
            redis=conn,
            destinations=destinations or DestinationsProvider(settings.config_path),
            client=TikTokClient(settings.tiktok_api_base_url, timeout=settings.http_timeout),
            limiter=RateLimiter(conn, settings.rate_limit_qps),
            ledger=Ledger(conn, delivered_retention=settings.delivered_retention,
                          dead_retention=settings.dead_retention),
            membership=Membership(conn),
        )
