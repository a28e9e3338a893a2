"""Everything a drain needs, built once per worker process (after the fork: sockets do not survive one)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from redis import Redis

from core.destinations import ConfigError, Destination, DestinationsFile, load_destinations
from core.redis_client import DELIVERY, redis_from_url
from core.settings import Settings
from worker.ledger import Ledger
from worker.limiter import RateLimiter
from worker.membership import Membership
from worker.tiktok.client import TikTokClient

log = structlog.get_logger(__name__)

_RELOAD_EVERY = 5.0


@dataclass
class DestinationsProvider:
    """The destinations file, re-read when it changes so operators can fix a token without a restart."""

    path: str
    _loaded: DestinationsFile = field(default_factory=DestinationsFile)
    _mtime: float = -1.0
    _checked: float = 0.0

    def current(self) -> DestinationsFile:
        now = time.monotonic()
        if now - self._checked >= _RELOAD_EVERY or self._mtime < 0:
            self._checked = now
            try:
                mtime = Path(self.path).stat().st_mtime
            except OSError:
                mtime = -2.0
            if mtime != self._mtime:
                self._mtime = mtime
                try:
                    self._loaded = load_destinations(self.path)
                except ConfigError as exc:
                    log.error("destinations_unreadable", error=str(exc))
        return self._loaded

    def get(self, destination_id: str) -> Destination | None:
        try:
            return self.current().get(destination_id)
        except KeyError:
            return None


@dataclass
class WorkerContext:
    settings: Settings
    redis: Redis
    destinations: DestinationsProvider
    client: TikTokClient
    limiter: RateLimiter
    ledger: Ledger
    membership: Membership
    # Per target, the TikTok audience id its batches go to, once resolved (created, or its ownership
    # confirmed): neither answer ever changes, so this process skips the Redis look-up for it afterwards.
    audience_ids: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings, client: Redis | None = None,
              destinations: DestinationsProvider | None = None) -> WorkerContext:
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
