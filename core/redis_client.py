"""Redis clients from a URL, including Redis Sentinel.

Besides redis-py's own forms (``redis://``, ``rediss://``, ``unix://``), a URL may name a Sentinel-managed
master::

    sentinel://[:password@]host:port[,host:port...]/service_name[/db][?sentinel_password=...]

The password (if any) is the master's; ``sentinel_password`` is for the sentinels when they ask for one. The
client asks the sentinels for the current master on every new connection, so after a failover the next
command that reconnects reaches the new master. :func:`broker_options` turns the same URL into what Celery's
broker (kombu) takes, so ``REDIS_URL`` and ``TTA_BROKER_URL`` share one form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

SCHEME = "sentinel"


@dataclass(frozen=True)
class SentinelURL:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelURL:
        parts = urlsplit(url)
        if parts.scheme != SCHEME:
            raise ValueError(f"not a {SCHEME}:// URL")
        userinfo, _, hosts = parts.netloc.rpartition("@")
        password = unquote(userinfo.partition(":")[2]) if userinfo else None
        sentinels: list[tuple[str, int]] = []
        for item in hosts.split(","):
            host, _, port = item.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"sentinel address {item!r} is not host:port")
            sentinels.append((host.strip("[]"), int(port)))
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ValueError("a sentinel:// URL names the monitored service: sentinel://host:port/SERVICE")
        if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ValueError("a sentinel:// URL's path is /SERVICE or /SERVICE/DB")
        query = parse_qs(parts.query)
        return cls(sentinels=sentinels, service=path[0], db=int(path[1]) if len(path) == 2 else 0,
                   password=password or None,
                   sentinel_password=next(iter(query.get("sentinel_password", [])), None))

    def sentinel_kwargs(self) -> dict[str, Any]:
        return {"password": self.sentinel_password} if self.sentinel_password else {}


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SCHEME}://")


def redis_from_url(url: str, **options: Any) -> redis.Redis:
    """A client for ``url`` (any form above); ``options`` are redis-py connection options (timeouts...)."""
    return _from_url(url, redis.Redis, Sentinel, options)


def async_redis_from_url(url: str, **options: Any) -> aioredis.Redis:
    """:func:`redis_from_url` for asyncio callers."""
    return _from_url(url, aioredis.Redis, AsyncSentinel, options)


def _from_url(url: str, client_class: Any, sentinel_class: Any, options: dict[str, Any]) -> Any:
    """The one recipe behind both: a plain URL through ``client_class.from_url``, a sentinel URL as the
    master its sentinels name (asked with the same timeouts as the client's own)."""
    if not is_sentinel(url):
        return client_class.from_url(url, **options)
    spec = SentinelURL.parse(url)
    sentinel = sentinel_class(spec.sentinels, sentinel_kwargs=spec.sentinel_kwargs(),
                              socket_timeout=options.get("socket_timeout", 5),
                              socket_connect_timeout=options.get("socket_connect_timeout", 5))
    return sentinel.master_for(spec.service, db=spec.db, password=spec.password, **options)


def broker_options(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's ``broker_url`` and the extra ``broker_transport_options`` for ``url``: a sentinel URL becomes
    kombu's ``sentinel://h1:p1;sentinel://h2:p2`` list with the service as ``master_name``."""
    if not is_sentinel(url):
        return url, {}
    spec = SentinelURL.parse(url)
    auth = f":{spec.password}@" if spec.password else ""
    broker = ";".join(f"{SCHEME}://{auth}{host}:{port}/{spec.db}" for host, port in spec.sentinels)
    options: dict[str, Any] = {"master_name": spec.service}
    if spec.sentinel_password:
        options["sentinel_kwargs"] = {"password": spec.sentinel_password}
    return broker, options


def display(url: str) -> str:
    """``url`` without credentials, for messages and logs."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"
