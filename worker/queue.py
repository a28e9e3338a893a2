"""The queue contract: how the producer appends operations and marks targets due.

Per intake request, every target's operations become *one* stream entry (field ``o``: packed operations, see
:mod:`worker.operations`), written by one script call (``enqueue.lua``) for the whole request:

- ``XADD`` the entry to the target's stream (the entry id's milliseconds are the acceptance time);
- ``INCRBY`` the target's pending-operation counter, and the fleet-wide backlog counter;
- ``ZADD ... LT`` the target into the ready index, due one flush interval from now (``LT`` keeps an earlier
  due time: the oldest waiting operation sets the pace);
- ``SADD`` the target into the set of known targets.

One script instead of ~3 pipelined commands per target because redis-py's per-command packing and reply
parsing cost the intake more than Redis's own work (~15 µs a command against ~1 µs). It is sent with ``EVAL``
(Redis caches it by digest) rather than ``EVALSHA``, so a Redis that restarted and forgot its scripts needs no
retry path.

A target whose pending count reaches a full batch is made due at once with a second, rare round trip.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from worker import keys
from worker.operations import Operation, encode_entry

ENTRY_FIELD = "o"
_ENQUEUE = Path(__file__).with_name("enqueue.lua").read_text()


def group_by_target(operations: Iterable[Operation]) -> dict[str, list[list[str]]]:
    grouped: dict[str, list[list[str]]] = defaultdict(list)
    for op in operations:
        grouped[op.target.name].append(op.pack())
    return grouped


def queue_commands(pipe: Any, grouped: dict[str, list[list[str]]], due_at: float) -> None:
    """Queue the append of ``grouped`` on ``pipe`` as one command; its reply is what :func:`full_targets`
    reads, so it must be the first command of the pipeline."""
    script_keys: list[str] = [keys.READY, keys.TARGETS, keys.BACKLOG]
    args: list[Any] = [repr(due_at), ENTRY_FIELD]
    for target, packed in grouped.items():
        script_keys += (keys.stream(target), keys.pending_count(target))
        args += (target, len(packed), encode_entry(packed))
    pipe.eval(_ENQUEUE, len(script_keys), *script_keys, *args)


def full_targets(results: list[Any], grouped: dict[str, list[list[str]]], batch_size: int) -> list[str]:
    """The targets whose pending count reached a full batch, from the replies of a pipeline that began with
    :func:`queue_commands`."""
    counts = results[0]
    return [target for target, count in zip(grouped, counts, strict=True) if int(count) >= batch_size]


def enqueue(client: redis.Redis, operations: Iterable[Operation], *, flush_interval: float,
            batch_size: int, now: float | None = None) -> int:
    """Append operations; returns how many were written. Raises redis errors: nothing is half-accepted
    silently, the caller answers the sender with a failure."""
    grouped = group_by_target(operations)
    if not grouped:
        return 0
    due_at = (time.time() if now is None else now) + flush_interval
    pipe = client.pipeline(transaction=True)
    queue_commands(pipe, grouped, due_at)
    results = pipe.execute()
    full = full_targets(results, grouped, batch_size)
    if full:
        client.zadd(keys.READY, dict.fromkeys(full, 0), lt=True)
    return sum(len(p) for p in grouped.values())


async def enqueue_async(client: aioredis.Redis, operations: Iterable[Operation], *, flush_interval: float,
                        batch_size: int, now: float | None = None) -> int:
    """:func:`enqueue` for asyncio callers (the HTTP intake)."""
    grouped = group_by_target(operations)
    if not grouped:
        return 0
    due_at = (time.time() if now is None else now) + flush_interval
    pipe = client.pipeline(transaction=True)
    queue_commands(pipe, grouped, due_at)
    results = await pipe.execute()
    full = full_targets(results, grouped, batch_size)
    if full:
        await client.zadd(keys.READY, dict.fromkeys(full, 0), lt=True)
    return sum(len(p) for p in grouped.values())
