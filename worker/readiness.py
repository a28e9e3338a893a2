"""Readiness that proves the write path, not just that something answers PING.

The probe runs a script that changes nothing yet goes through a write command (``ZADD XX`` of a member that
is never in the ready index: nothing is added, changed or replicated), over keys of the layout a real enqueue
touches: the ready index, the backlog counter and one target's stream and counter. Redis refuses it exactly
where an enqueue would fail: a replica
(READONLY), a Redis out of memory under ``noeviction`` (OOM), a Cluster node (CROSSSLOT: the service needs one
Redis, or one master behind Sentinel), a Redis without scripting or with a user not allowed to run it.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from worker import keys, lua

# A target name that never carries work (no destination is called this): its keys are never written.
PROBE_TARGET = "tta-readiness-probe|0|0"
WRITE_PROBE = lua.source("write_probe")
PROBE_KEYS = (keys.READY, keys.BACKLOG, keys.stream(PROBE_TARGET), keys.pending_count(PROBE_TARGET))


def check_write_path(client: redis.Redis) -> str | None:
    """None when a write would be accepted; else why not (Redis's own words, never the URL or a password)."""
    try:
        client.eval(WRITE_PROBE, len(PROBE_KEYS), *PROBE_KEYS, PROBE_TARGET)
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


async def check_write_path_async(client: aioredis.Redis) -> str | None:
    """:func:`check_write_path` for asyncio callers."""
    try:
        await client.eval(WRITE_PROBE, len(PROBE_KEYS), *PROBE_KEYS, PROBE_TARGET)
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
