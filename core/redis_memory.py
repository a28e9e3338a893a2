"""Redis out of memory as a condition, not a crash.

A Redis at its ``maxmemory`` with the ``noeviction`` policy (the only safe one for a queue: evicting would
drop accepted events) refuses every write that could grow it with ``OOM command not allowed when used memory >
'maxmemory'``. Reads, deletes and acknowledgements still work, so delivery (which frees memory) can go on.
Intake answers 503 with Retry-After, ``/readyz`` answers 503 naming the cause, the worker backs off and logs
once per episode, and ``stats`` warns; all of them use the checks here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import ExecAbortError, OutOfMemoryError, ResponseError

# Policies under which a full Redis refuses writes instead of evicting (volatile-* evict only keys with a TTL,
# and the queue's keys have none).
_REFUSING_POLICIES = ("noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl")


def is_out_of_memory(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is Redis refusing a write for lack of memory."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OutOfMemoryError):
            return True
        if isinstance(exc, (ResponseError, ExecAbortError)) and "OOM" in str(exc)[:200]:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


@dataclass(frozen=True, slots=True)
class MemoryState:
    used: int
    limit: int  # 0: no maxmemory
    policy: str

    @property
    def full(self) -> bool:
        """Whether writes are being refused (or about to be): at the limit under a refusing policy."""
        return self.limit > 0 and self.policy in _REFUSING_POLICIES and self.used >= self.limit

    def describe(self) -> str:
        return (f"Redis is out of memory: {self.used:,} bytes used of maxmemory {self.limit:,} "
                f"(policy {self.policy}); writes are refused until delivery or an operator frees memory")


def memory_state(info: dict[str, Any]) -> MemoryState:
    """The state from ``INFO memory``'s answer (as redis-py parses it)."""
    return MemoryState(used=int(info.get("used_memory") or 0), limit=int(info.get("maxmemory") or 0),
                       policy=str(info.get("maxmemory_policy") or ""))


class OutOfMemoryEpisode:
    """Tracks one process's view of an out-of-memory episode, so it is logged once when it starts and once
    when it ends rather than on every refused write."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.active = False

    def note(self, exc: BaseException, log: Any) -> bool:
        """True when ``exc`` is Redis out of memory (logged if it starts an episode): the caller backs off
        quietly. False for any other error, which the caller handles as before."""
        if not is_out_of_memory(exc):
            return False
        if self.refused():
            log.warning("redis_out_of_memory", where=self.where,
                        detail="Redis refuses writes (maxmemory reached): backing off until it has room; "
                               "nothing accepted is lost")
        return True

    def note_success(self, log: Any) -> None:
        """Note that Redis took writes again (logged if it ends an episode)."""
        if self.active and self.succeeded():
            log.info("redis_memory_recovered", where=self.where)

    def refused(self) -> bool:
        """Note a write refused for lack of memory; True when this starts an episode (log it)."""
        started = not self.active
        self.active = True
        return started

    def succeeded(self) -> bool:
        """Note a write that went through; True when this ends an episode (log it)."""
        ended = self.active
        self.active = False
        return ended
