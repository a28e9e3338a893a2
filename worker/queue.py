"""The queue contract: how the producer appends operations and marks targets due.

Per intake request, every target's operations become *one* stream entry (field ``o``: packed operations, see
:mod:`worker.operations`), written by one script call (``enqueue.lua``) for the whole request:

- ``XADD`` the entry to the target's stream (the entry id's milliseconds are the acceptance time);
- raise the target's pending-operation counter (one ``MGET`` and one ``MSET`` for all the call's targets),
  and ``INCRBY`` the fleet-wide backlog counter;
- ``ZADD ... LT`` the target into its lane's due set and the lane into the ready index of lanes, due one flush
  interval from now (``LT`` keeps an earlier due time: the oldest waiting operation sets the pace);
- ``SADD`` the new targets into the set of known targets (one command for all of them);
- with a quiet-flush period, mark the intake busy for that long (``keys.INTAKE_RECENT``, see claim_due.lua).

One script instead of ~3 pipelined commands per target because redis-py's per-command packing and reply
parsing cost the intake more than Redis's own work (~15 µs a command against ~1 µs). It is sent with ``EVAL``
(Redis caches it by digest) rather than ``EVALSHA``, so a Redis that restarted and forgot its scripts needs no
retry path.

A target whose pending count reaches a full batch is made due at once (score 0), by the same script.

With a backlog ceiling the script first checks that the append keeps the backlog within it, and otherwise
writes nothing and answers so (:class:`BacklogCeiling`): check and write are one atomic step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio as aioredis

from worker import keys, lua
from worker.keys import Target
from worker.operations import ACTION_CODE, ADID_TYPE_CODE, Operation, encode_entry

ENTRY_FIELD = "o"


class BacklogCeiling(Exception):
    """The append was refused, nothing written: it would have taken the backlog past the ceiling."""

    def __init__(self, backlog: int, ceiling: int, adding: int) -> None:
        super().__init__(f"backlog of {backlog:,} operations plus {adding:,} would pass the limit of {ceiling:,}")
        self.backlog = backlog
        self.ceiling = ceiling
        self.adding = adding


def backlog_after(reply: Any, grouped: dict[str, list[list[Any]]], ceiling: int) -> int:
    """The backlog from the enqueue script's ``reply``; raises :class:`BacklogCeiling` if it refused."""
    value = int(reply)
    if value < 0:
        raise BacklogCeiling(-1 - value, ceiling, sum(len(packed) for packed in grouped.values()))
    return value
_ENQUEUE = lua.source("enqueue")


def group_by_target(operations: Iterable[Operation]) -> dict[str, list[list[Any]]]:
    """Packed operations by target name, in order. Keyed by the Target object first (the router hands out one
    cached object per target), so a name is built once per target rather than once per operation."""
    operations = operations if isinstance(operations, list) else list(operations)
    by_object: dict[int, tuple[Target, list[list[Any]]]] = {}
    actions, types = ACTION_CODE, ADID_TYPE_CODE
    for op in operations:
        entry = by_object.get(id(op.target))
        if entry is None:
            entry = by_object[id(op.target)] = (op.target, [])
        adid = op.advertising_id
        entry[1].append([actions[op.action], op.email, op.phone, adid,
                         types[op.advertising_id_type] if adid else "", op.event_ms, op.message_id])
    grouped = {target.name: packed for target, packed in by_object.values()}
    if len(grouped) < len(by_object):
        # Two objects for one target (a router cache cleared mid-request): merging their lists would lose the
        # order between them, so take the plain way.
        grouped = defaultdict(list)
        for op in operations:
            grouped[op.target.name].append(op.pack())
    return grouped


def enqueue_command(grouped: dict[str, list[list[Any]]], due_at: float, batch_size: int,
                    quiet: float = 0.0, ceiling: int = 0) -> list[Any]:
    """The ``EVAL`` arguments that append ``grouped`` (its reply is the backlog afterwards, read it with
    :func:`backlog_after`). ``quiet`` is the quiet-flush period in seconds (``TTA_QUIET_FLUSH``; 0: the write
    does not mark the intake busy); ``ceiling`` the most operations the backlog may hold (0: no limit)."""
    by_lane: dict[str, list[str]] = {}
    for target in grouped:
        by_lane.setdefault(keys.lane_of(target), []).append(target)
    lane_keys: list[str] = []
    lane_args: list[Any] = []
    per_target_keys: list[str] = []
    target_args: list[Any] = []
    for lane, targets in by_lane.items():
        lane_keys.append(keys.lane_due(lane))
        lane_args += (lane, len(targets))
        for target in targets:
            packed = grouped[target]
            per_target_keys += (keys.stream(target), keys.pending_count(target))
            target_args += (target, len(packed), encode_entry(packed))
    script_keys = [keys.READY, keys.TARGETS, keys.BACKLOG, keys.INTAKE_RECENT, keys.QUIET_SWEPT, *lane_keys,
                   *per_target_keys]
    args: list[Any] = [repr(due_at), ENTRY_FIELD, batch_size, max(0, round(quiet * 1000)), max(0, ceiling),
                       sum(len(packed) for packed in grouped.values()), len(by_lane), *lane_args, *target_args]
    return [_ENQUEUE, len(script_keys), *script_keys, *args]


def queue_commands(pipe: Any, grouped: dict[str, list[list[Any]]], due_at: float, batch_size: int,
                   quiet: float = 0.0, ceiling: int = 0) -> None:
    """Queue the append of ``grouped`` on ``pipe`` as one command, whose reply is the backlog afterwards
    (read it with :func:`backlog_after`)."""
    pipe.eval(*enqueue_command(grouped, due_at, batch_size, quiet, ceiling))


def enqueue(client: redis.Redis, operations: Iterable[Operation], *, flush_interval: float,
            batch_size: int, now: float | None = None, quiet: float = 0.0) -> int:
    """Append operations; returns how many were written. Raises redis errors: nothing is half-accepted
    silently, the caller answers the sender with a failure."""
    grouped = group_by_target(operations)
    if not grouped:
        return 0
    due_at = (time.time() if now is None else now) + flush_interval
    client.eval(*enqueue_command(grouped, due_at, batch_size, quiet))
    return sum(len(p) for p in grouped.values())


async def enqueue_async(client: aioredis.Redis, operations: Iterable[Operation], *, flush_interval: float,
                        batch_size: int, now: float | None = None, quiet: float = 0.0) -> int:
    """:func:`enqueue` for asyncio callers."""
    grouped = group_by_target(operations)
    if not grouped:
        return 0
    due_at = (time.time() if now is None else now) + flush_interval
    await client.eval(*enqueue_command(grouped, due_at, batch_size, quiet))
    return sum(len(p) for p in grouped.values())
