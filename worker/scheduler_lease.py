"""One active scheduler for the whole fleet, by lease.

Any number of processes may run a scheduler (every ``worker`` by default, or a ``scheduler`` role of its
own); the one holding the lease key schedules, the others wait and try for it once a second. The holder
renews every third of the lease's TTL; a holder that dies (or loses Redis) is replaced within one TTL. Idle
Redis load therefore does not grow with the fleet: each standby costs one ``SET NX`` a second.

Scheduling itself is :class:`worker.scheduler.Scheduler`'s ``run(stop)`` loop, wrapped from outside: it is
given an event that is set when the lease is lost (or on shutdown), so it stops claiming at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable

import redis
import structlog

from worker import keys, lua

log = structlog.get_logger(__name__)

LEASE_KEY = f"{keys.PREFIX}:scheduler:lease"
_RETRY = 1.0  # seconds between a standby's attempts

_RENEW = lua.source("scheduler_lease_renew")
_RELEASE = lua.source("scheduler_lease_release")


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class SchedulerLease:
    def __init__(self, client: redis.Redis, ttl: float, holder: str | None = None) -> None:
        self._redis = client
        self._ttl_ms = max(1, round(ttl * 1000))
        self.ttl = ttl
        self.holder = holder or holder_id()
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lease if it is free (or still this holder's: a renewal that failed on a Redis error)."""
        return self.renew()

    def renew(self) -> bool:
        return bool(self._renew(keys=[LEASE_KEY], args=[self.holder, self._ttl_ms]))

    def release(self) -> None:
        self._release(keys=[LEASE_KEY], args=[self.holder])

    def current_holder(self) -> str | None:
        raw = self._redis.get(LEASE_KEY)
        return raw.decode() if isinstance(raw, bytes) else raw


def run_under_lease(lease: SchedulerLease, schedule: Callable[[threading.Event], None], stop: threading.Event,
                    on_change: Callable[[bool], None] | None = None) -> None:
    """Until ``stop``: wait for the lease, then run ``schedule(lost)`` while holding it; ``lost`` is set when a
    renewal fails or ``stop`` is set. ``on_change(active)`` is told each time this process starts or stops
    scheduling (for the ``tta_scheduler_active`` gauge)."""
    while not stop.is_set():
        try:
            held = lease.acquire()
        except redis.RedisError as exc:
            log.warning("scheduler_lease_redis_error", error=str(exc))
            held = False
        if not held:
            stop.wait(_RETRY)
            continue
        log.info("scheduler_lease_taken", holder=lease.holder)
        lost = threading.Event()
        keeper = threading.Thread(target=_keep, args=(lease, lost, stop), name="tta-lease-keeper", daemon=True)
        keeper.start()
        if on_change:
            on_change(True)
        try:
            schedule(lost)
        finally:
            lost.set()
            keeper.join()
            if on_change:
                on_change(False)
        if stop.is_set():
            with contextlib.suppress(redis.RedisError):
                lease.release()  # a clean stop hands over at once rather than a TTL later
        else:
            log.warning("scheduler_lease_lost", holder=lease.holder)


def _keep(lease: SchedulerLease, lost: threading.Event, stop: threading.Event) -> None:
    every = lease.ttl / 3
    next_renewal = time.monotonic() + every
    while not lost.wait(min(0.1, every)):
        if stop.is_set():
            lost.set()
            return
        if time.monotonic() < next_renewal:
            continue
        next_renewal = time.monotonic() + every
        try:
            renewed = lease.renew()
        except redis.RedisError as exc:
            log.warning("scheduler_lease_redis_error", error=str(exc))
            renewed = False
        if not renewed:
            lost.set()
            return
