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

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from core.redis_packing import packer_options

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


@dataclass(frozen=True, eq=False)
class Role:
    """Who a client is for, and so how long it may wait on a Redis that has gone quiet. Every client the
    project makes comes from :func:`redis_from_url` with one of the roles below."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


# Intake, the Python API and ``ingest``: redis-py's defaults; a stalled write is the caller's to time out.
INTAKE = Role("intake")
# Delivery: a Redis that vanishes without closing the connection must fail a drain, not hang it until Celery's
# hard time limit (the lane's lock has expired long before that).
DELIVERY = Role("delivery", {"health_check_interval": 10, "socket_keepalive": True, "retry_on_timeout": True,
                             "socket_timeout": 30, "socket_connect_timeout": 5})
# The scheduler: long-lived, so health checks and keep-alive; a hang must not stop scheduling for good.
SCHEDULER = Role("scheduler", {"health_check_interval": 10, "socket_keepalive": True, "socket_timeout": 15,
                               "socket_connect_timeout": 5})
# The scheduler's reading of the broker's queue length.
BROKER_GAUGE = Role("broker gauge", {"socket_timeout": 15, "socket_connect_timeout": 5})
# Readiness probes: answer within a probe's own timeout.
PROBE = Role("probe", {"socket_timeout": 2, "socket_connect_timeout": 2})
# The fleet's metrics, read on a scrape.
METRICS = Role("metrics", {"socket_timeout": 5, "socket_connect_timeout": 2})
# Operator commands: fail fast with a clear message when Redis is not there.
OPERATOR = Role("operator", {"socket_connect_timeout": 5})
# Local stacks, benchmarks and tests: redis-py's defaults.
LOCAL = Role("local")


def redis_from_url(url: str, role: Role) -> redis.Redis:
    """A client for ``url`` (any form above) with the connection options of ``role``, packing commands with
    :class:`core.redis_packing.DirectPacker` (redis-py's asyncio connections take no packer)."""
    return _from_url(url, redis.Redis, Sentinel, {**role.options, **packer_options()})


def async_redis_from_url(url: str, role: Role) -> aioredis.Redis:
    """:func:`redis_from_url` for asyncio callers."""
    return _from_url(url, aioredis.Redis, AsyncSentinel, role.options)


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
