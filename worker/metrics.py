"""Every metric of the worker fleet, defined here and nowhere else.

Counters and histograms are counted where things happen (the TikTok client's HTTP call, the ledger's status
changes, the rate limiter's throttle) by one-line calls into this module. In a worker they live in
prometheus_client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by the runner before the pool
forks), so ``/metrics`` sums every pool process. Fleet-wide gauges (backlog, due work, pauses, throttles) are
not counted at all: :class:`FleetCollector` reads them from Redis at scrape time, so any one exporter tells
the truth and none drifts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from worker import keys

log = structlog.get_logger(__name__)

BATCHES = Counter("tta_batches", "Batches that reached a status, by outcome (delivered, dead, retrying, paused)",
                  ["outcome"])
ROWS = Counter("tta_rows", "Rows (users) delivered to TikTok, by action (add, delete)", ["action"])
TIKTOK_REQUESTS = Counter("tta_tiktok_requests", "Calls to TikTok's API, by endpoint and TikTok code "
                          "(0 = success; 'transport' = no complete answer)", ["endpoint", "code"])
TIKTOK_DURATION = Histogram("tta_tiktok_request_duration_seconds", "Duration of calls to TikTok's API",
                            ["endpoint"], buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
THROTTLES = Counter("tta_throttles", "Times TikTok throttled a token (every worker then pauses calls with it)")
SCHEDULER_RESTARTS = Counter("tta_scheduler_restarts", "Scheduler processes found dead and started again")
SCHEDULER_ACTIVE = Gauge("tta_scheduler_active", "1 while this process's scheduler holds the fleet's lease",
                         multiprocess_mode="livemax")

# The batch statuses counted as outcomes ("delivering" and "pending" are steps, not outcomes).
OUTCOMES = frozenset({"delivered", "dead", "retrying", "paused", "shadow"})


def endpoint_label(path: str) -> str:
    """``/segment/mapping/`` -> ``segment/mapping``: a short, bounded label (paths carry no ids)."""
    return path.strip("/")


def tiktok_call(path: str, code: int | str, seconds: float) -> None:
    endpoint = endpoint_label(path)
    TIKTOK_REQUESTS.labels(endpoint, str(code)).inc()
    TIKTOK_DURATION.labels(endpoint).observe(seconds)


def batch_status(old: str, new: str, action: str, rows: int) -> None:
    """A batch record moved from ``old`` to ``new`` (the ledger calls this for every change it stages)."""
    if new == old or new not in OUTCOMES:
        return
    BATCHES.labels(new).inc()
    if new == "delivered":
        ROWS.labels(action).inc(rows)


def throttled() -> None:
    THROTTLES.inc()


# -- fleet gauges, read from Redis at scrape time -----------------------------------------------------------


@dataclass(frozen=True)
class DueWork:
    """Work that more workers would get done sooner: due (or claimed and being drained) and not held back by
    a paused destination or a throttled token."""

    due_targets: int
    oldest_due_age: float
    paused_destinations: int
    throttled_tokens: int


def read_due_work(client: redis.Redis, token_ids: dict[str, str], *, lease: float,
                  now: float | None = None) -> DueWork:
    """Read the due-work signal (three round trips, O(active targets)).

    ``token_ids`` maps each destination id to its token's id (``Destination.token_id()``). The ready index
    holds lanes (one per destination, worker.lane): ``due_targets`` counts lanes, the unit one worker process
    drains at a time. A lane counts when its due time in the ready index is at most a scheduler lease ahead
    (waiting for a claim, claimed and queued, or being drained: a claim pushes the due time one lease ahead),
    its destination is not paused and its token is not cooling down after a throttle. Lanes waiting out a long
    backoff (beyond a lease) are not counted. The oldest due age is how long the most overdue unclaimed lane
    has been due (lanes
    made due at once by a full batch carry due time 0 and are left out of the age: they are claimed at the
    next tick).
    """
    now = time.time() if now is None else now
    destinations = sorted(token_ids)
    tokens = sorted(set(token_ids.values()))
    pipe = client.pipeline(transaction=False)
    pipe.zrangebyscore(keys.READY, "-inf", now + lease)
    pipe.zrangebyscore(keys.READY, "(0", now, start=0, num=1, withscores=True)
    for destination in destinations:
        pipe.exists(keys.paused(destination))
    for token in tokens:
        pipe.pttl(keys.cooldown(token))
    active, oldest, *flags = pipe.execute()
    paused = {d for d, flag in zip(destinations, flags[: len(destinations)], strict=True) if flag}
    cooling = {t for t, ttl in zip(tokens, flags[len(destinations):], strict=True) if int(ttl) > 0}
    held = paused | {d for d, token in token_ids.items() if token in cooling}
    due = 0
    for raw in active:
        name = raw.decode() if isinstance(raw, bytes) else raw
        if name.partition("|")[0] not in held:
            due += 1
    age = max(0.0, now - float(oldest[0][1])) if oldest else 0.0
    return DueWork(due_targets=due, oldest_due_age=age, paused_destinations=len(paused),
                   throttled_tokens=len(cooling))


# Per-destination backlog reads one pending count per target; past this many targets a scrape leaves the
# per-destination backlog out (the fleet-wide backlog and per-destination due counts stay) rather than grow
# without bound. A scrape with 10,000 targets took ~65 ms on a real redis-server (two busy shared cores).
DESTINATION_TARGETS_MAX = 20_000
_PIPELINE_CHUNK = 5_000


@dataclass(frozen=True)
class DestinationWork:
    """Per destination: operations waiting (``backlog``, None when too many targets to read) and audiences
    with work due in the destination's lane (``due_audiences``)."""

    backlog: dict[str, int] | None
    due_audiences: dict[str, int]


def read_destination_work(client: redis.Redis, destinations: Iterable[str], *,
                          targets_max: int = DESTINATION_TARGETS_MAX) -> DestinationWork:
    """Read per-destination backlog and due audiences: one SCARD, then (up to ``targets_max`` targets) the
    target set and every target's pending count, in pipelines of :data:`_PIPELINE_CHUNK` commands, and one
    ZCARD per destination lane. Destinations are ``destinations`` plus any that targets name."""
    names = set(destinations)
    backlog: dict[str, int] | None = None
    if int(client.scard(keys.TARGETS)) <= targets_max:
        targets = [t.decode() if isinstance(t, bytes) else t for t in client.smembers(keys.TARGETS)]
        backlog = dict.fromkeys(names, 0)
        for start in range(0, len(targets), _PIPELINE_CHUNK):
            chunk = targets[start:start + _PIPELINE_CHUNK]
            pipe = client.pipeline(transaction=False)
            for target in chunk:
                pipe.get(keys.pending_count(target))
            for target, raw in zip(chunk, pipe.execute(), strict=True):
                destination = target.partition("|")[0]
                backlog[destination] = backlog.get(destination, 0) + max(0, int(raw or 0))
        names.update(backlog)
    ordered = sorted(names)
    pipe = client.pipeline(transaction=False)
    for destination in ordered:
        pipe.zcard(keys.lane_due(destination))
    due = {d: int(n) for d, n in zip(ordered, pipe.execute(), strict=True)}
    return DestinationWork(backlog=backlog, due_audiences=due)


class FleetCollector(Collector):
    """Fleet-wide gauges from Redis, read when scraped. A Redis that does not answer leaves them out (and
    logs once per scrape) rather than failing the whole scrape: process and counter metrics still matter
    then."""

    def __init__(self, client: redis.Redis, token_ids: Any, *, lease: float,
                 queued_tasks: Callable[[], int] | None = None) -> None:
        self._redis = client
        self._token_ids = token_ids  # a callable returning {destination id: token id} (the file may change)
        self._lease = lease
        self._queued_tasks = queued_tasks  # drain tasks waiting in the broker (it may be another Redis)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            backlog = int(self._redis.get(keys.BACKLOG) or 0)
            token_ids = self._token_ids()
            work = read_due_work(self._redis, token_ids, lease=self._lease)
            per_destination = read_destination_work(self._redis, token_ids)
        except redis.RedisError as exc:
            log.warning("metrics_redis_unavailable", error=f"{type(exc).__name__}: {exc}")
            return
        yield GaugeMetricFamily("tta_backlog_operations", "Operations accepted and not yet settled (fleet-wide)",
                                value=backlog)
        yield GaugeMetricFamily("tta_due_targets", "Audiences with work due or being drained, not held back by "
                                "a pause or a throttle: the signal to scale workers on", value=work.due_targets)
        yield GaugeMetricFamily("tta_oldest_due_age_seconds", "How long the most overdue unclaimed audience has "
                                "been due", value=work.oldest_due_age)
        yield GaugeMetricFamily("tta_paused_destinations", "Destinations paused after TikTok refused their "
                                "token", value=work.paused_destinations)
        yield GaugeMetricFamily("tta_throttled_tokens", "Access tokens cooling down after TikTok throttled them",
                                value=work.throttled_tokens)
        due = GaugeMetricFamily("tta_destination_due_audiences", "Audiences with work waiting in the "
                                "destination's lane (due now or later)", labels=["destination"])
        for destination, count in per_destination.due_audiences.items():
            due.add_metric([destination], count)
        yield due
        if per_destination.backlog is not None:
            backlog_by = GaugeMetricFamily("tta_destination_backlog_operations", "Operations accepted and not "
                                           "yet settled, per destination", labels=["destination"])
            for destination, count in sorted(per_destination.backlog.items()):
                backlog_by.add_metric([destination], count)
            yield backlog_by
        if self._queued_tasks is not None:
            try:
                queued = self._queued_tasks()
            except redis.RedisError as exc:
                log.warning("metrics_broker_unavailable", error=f"{type(exc).__name__}: {exc}")
                return
            yield GaugeMetricFamily("tta_drain_queue_tasks", "Drain tasks waiting in the broker for a worker",
                                    value=queued)


def scrape_registry(*collectors: Collector) -> CollectorRegistry:
    """A registry for one ``/metrics`` answer: this module's metrics (summed over processes when they are
    shared), the process's own, and ``collectors``."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = REGISTRY  # in-memory metrics, process metrics included
        for collector in collectors:
            registry.register(collector)
        return registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    ProcessCollector(registry=registry)  # the serving process: memory, CPU, open files of the worker's parent
    for collector in collectors:
        registry.register(collector)
    return registry
