"""The scheduler: turns due lanes into drain tasks, one Celery task per lane's round of work, never per event.

Every ``worker`` process runs one; they share the ready index of lanes safely because claiming is atomic
(claim_due.lua). It also keeps the fleet-wide backlog figure honest, puts back in the ready index any lane
whose due set holds work but that fell out of it, and prunes expired ledger entries.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import redis
import structlog

from core.redis_memory import OutOfMemoryEpisode
from core.settings import Settings
from worker import keys, lua
from worker.creates import creates_due
from worker.ledger import Ledger

log = structlog.get_logger(__name__)

_CLAIM = lua.source("claim_due")
_CLAIM_AT_ONCE = 500
_MAINTENANCE_EVERY = 15.0
_CREATES_EVERY = 0.5  # how often to look at the legacy createAudience stream
# With ``dispatch_many``, many claimed targets go out several to a task (at least 4 tasks per worker process,
# ``spread``, so every one gets some; at most _TARGETS_PER_TASK targets each): one task per target cost ~1 ms
# of broker work per target.
_TARGETS_PER_TASK = 50
# Seconds between two tries of a Redis that refuses writes for lack of memory.
OUT_OF_MEMORY_BACKOFF = 2.0


def heal_lanes(client: redis.Redis, lanes: set[str]) -> int:
    """Mark due in the ready index every lane whose due set holds work but that is missing from the index (a
    drain killed between its finish and its reschedule); returns how many were."""
    lanes_list = sorted(lanes)
    if not lanes_list:
        return 0
    pipe = client.pipeline(transaction=False)
    for lane in lanes_list:
        pipe.zrange(keys.lane_due(lane), 0, 0, withscores=True)
        pipe.zscore(keys.READY, lane)
    answers = pipe.execute()
    healed = 0
    for index, lane in enumerate(lanes_list):
        first, listed = answers[2 * index], answers[2 * index + 1]
        if first and listed is None:
            client.zadd(keys.READY, {lane: float(first[0][1])}, nx=True)
            healed += 1
    return healed


def recount_backlog(client: redis.Redis) -> int:
    """Set the backlog counter to the sum of the targets' pending counts (corrects drift after crashes)."""
    targets = [t.decode() if isinstance(t, bytes) else t for t in client.smembers(keys.TARGETS)]
    if not targets:
        client.set(keys.BACKLOG, 0)
        return 0
    counts = client.mget([keys.pending_count(t) for t in targets])
    total = sum(int(c) for c in counts if c)
    client.set(keys.BACKLOG, total)
    return total


class Scheduler:
    """Claims due lanes from the ready index and hands them to ``dispatch`` (or several to a task through
    ``dispatch_many``), starts the createAudience consumer when its stream has work, and every so often does the
    fleet's upkeep: recounts the backlog, puts back lanes that fell out of the ready index and prunes the
    ledger. :meth:`run` loops until stopped, riding out Redis and broker errors."""

    def __init__(self, client: redis.Redis, settings: Settings, dispatch: Callable[[str], None],
                 dispatch_creates: Callable[[], None] | None = None,
                 dispatch_many: Callable[[list[str]], None] | None = None, spread: int = 2) -> None:
        self._redis = client
        self._settings = settings
        self._dispatch = dispatch
        self._dispatch_many = dispatch_many
        self._spread = max(1, spread)
        self._dispatch_creates = dispatch_creates
        self._next_creates_check = 0.0
        self._claim = client.register_script(_CLAIM)
        # A claimed target is not claimed again before a drain could have finished with it or died (and the
        # dead drainer's lock expired); a drain that runs reschedules the target itself.
        self._lease = settings.scheduler_lease
        self._next_maintenance = 0.0
        self._prune_cursor = 0  # where the sweep of per-target ledger indexes goes on from
        self._audience_cursor = 0  # and of the per-audience ones
        self._memory = OutOfMemoryEpisode("scheduler")

    def tick(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        # Reaching ahead for a quiet intake only makes sense when a drain would agree to cut early.
        reach = self._settings.flush_interval if self._settings.quiet_flush else 0
        claimed = self._claim(keys=[keys.READY, keys.INTAKE_RECENT, keys.QUIET_SWEPT],
                              args=[now, now + self._lease, _CLAIM_AT_ONCE, reach])
        targets = [t.decode() if isinstance(t, bytes) else t for t in claimed]  # lanes
        size = 1
        if self._dispatch_many is not None:
            # A few targets (few audiences, big batches) still go one per task: each drain has real work to
            # spread over the processes, and the ~1 ms a task costs is nothing beside it.
            size = max(1, min(_TARGETS_PER_TASK, len(targets) // (4 * self._spread)))
        for index in range(0, len(targets), size):
            try:
                if self._dispatch_many is None or size == 1:
                    for target in targets[index : index + size]:
                        self._dispatch(target)
                else:
                    self._dispatch_many(targets[index : index + size])
            except Exception:
                # The broker refused (Redis restarting, say): give back the claims not dispatched, so those
                # targets are due again now rather than a lease from now.
                with contextlib.suppress(redis.RedisError):
                    self._redis.zadd(keys.READY, dict.fromkeys(targets[index:], now), lt=True)
                raise
        return targets

    def check_creates(self) -> bool:
        """Dispatch the legacy createAudience consumer when its stream has work (one scheduler per lease)."""
        if self._dispatch_creates is None or time.monotonic() < self._next_creates_check:
            return False
        self._next_creates_check = time.monotonic() + _CREATES_EVERY
        if not creates_due(self._redis):
            return False
        self._dispatch_creates()
        return True

    def maintain(self) -> None:
        recount_backlog(self._redis)
        targets = self._redis.smembers(keys.TARGETS)
        heal_lanes(self._redis, {keys.lane_of(t.decode() if isinstance(t, bytes) else t) for t in targets})
        ledger = Ledger(self._redis, delivered_retention=self._settings.delivered_retention,
                        dead_retention=self._settings.dead_retention)
        ledger.prune(time.time() - 60)
        self._prune_cursor = ledger.prune_targets(time.time() - 60, self._prune_cursor)
        self._audience_cursor = ledger.prune_audiences(time.time() - 60, self._audience_cursor)

    def run(self, stop: threading.Event) -> None:
        log.info("scheduler_started")
        while not stop.is_set():
            try:
                claimed = self.tick()
                self.check_creates()
                if time.monotonic() >= self._next_maintenance:
                    self._next_maintenance = time.monotonic() + _MAINTENANCE_EVERY
                    self.maintain()
            except redis.RedisError as exc:
                if self._memory.note(exc, log):  # Redis full: once per episode, then back off quietly
                    stop.wait(OUT_OF_MEMORY_BACKOFF)
                    continue
                log.warning("scheduler_redis_error", error=str(exc))
                stop.wait(1.0)
                continue
            except Exception as exc:  # e.g. kombu's OperationalError from a publish: never let the loop die
                if self._memory.note(exc, log):  # a publish Redis refused for lack of memory
                    stop.wait(OUT_OF_MEMORY_BACKOFF)
                    continue
                log.error("scheduler_error", error=f"{type(exc).__name__}: {exc}", exc_info=True)
                stop.wait(1.0)
                continue
            self._memory.note_success(log)
            if len(claimed) < _CLAIM_AT_ONCE:
                stop.wait(self._settings.scheduler_tick)
        log.info("scheduler_stopped")
