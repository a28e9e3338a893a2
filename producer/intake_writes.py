"""The intake's stage-writes step: what a routed request writes to Redis, queued on a pipeline (sync or
``redis.asyncio``: queuing commands is the same on both, only sending differs).

Everything a request produces goes in *one* MULTI/EXEC round trip: the operations (the queue contract of
:mod:`worker.queue`), audience-create requests (:mod:`worker.creates_stream`), the rejection counters and log,
and the intake's counters in ``keys.METRICS`` (``unmatched``, ``opted_out``, ``clamped``). Either all of it is
stored or the caller answers the sender with a failure, so a success answer always means "stored". (The
converse is not guaranteed: a reply lost after EXEC turns a stored request into a failure answer, and the
sender's resend duplicates it, which at-least-once delivery tolerates.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from core.settings import Settings
from producer.intake_routing import Refusal, RoutedRequest
from worker import keys
from worker.creates_stream import encode_create
from worker.queue import backlog_after, queue_commands

REJECTED_LOG_CAP = 1000


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """How the intake appends to the queue (from the settings)."""

    flush_interval: float  # a target's operations are due this long after acceptance at the latest
    batch_size: int  # a target with this many operations waiting is due at once
    quiet: float  # seconds each write marks the intake busy for the quiet-flush sweep (0: no marker)
    backlog_limit: int  # the backlog ceiling the queue script enforces

    @classmethod
    def from_settings(cls, settings: Settings) -> QueueOptions:
        return cls(settings.flush_interval, settings.batch_size, settings.quiet_flush, settings.backlog_limit)


@dataclass(frozen=True, slots=True)
class StagedWrites:
    operations: int  # operations queued
    creates: int  # distinct audience-create requests queued


def stage_writes(pipe: Any, routed: RoutedRequest, queue: QueueOptions) -> StagedWrites:
    """Queue ``routed``'s writes on ``pipe``. The first command (the queue script) or else the last one reads
    the backlog back, so the cache is refreshed by the same round trip (:func:`backlog_read_back`)."""
    now = routed.now
    grouped = routed.grouped
    if grouped:
        queue_commands(pipe, grouped, now + queue.flush_interval, queue.batch_size, queue.quiet,
                       queue.backlog_limit)
    distinct_creates = {(c.destination, c.advertiser_id, c.name): None for c in routed.creates}
    for destination, advertiser_id, name in distinct_creates:
        pipe.xadd(keys.CREATES, encode_create(destination, advertiser_id, name))
    for counter, n in routed.counters().items():
        pipe.hincrby(keys.METRICS, counter, n)
    if routed.refusals:
        for code, n in Counter(code for r in routed.refusals for code in r.codes()).items():
            pipe.hincrby(keys.REJECTED, code, n)
        log = [_log_entry(r, now) for r in routed.refusals[-REJECTED_LOG_CAP:]]
        pipe.lpush(keys.REJECTED_LOG, *log)
        pipe.ltrim(keys.REJECTED_LOG, 0, REJECTED_LOG_CAP - 1)
    if not grouped:
        pipe.get(keys.BACKLOG)
    return StagedWrites(routed.operations, len(distinct_creates))


def backlog_read_back(results: list[Any], routed: RoutedRequest, backlog_limit: int) -> int:
    """The backlog the staged writes read back; raises :class:`worker.queue.BacklogCeiling` if the queue
    script refused the operations (the request's rejection counters and create requests were stored all the
    same)."""
    if routed.grouped:
        return backlog_after(results[0], routed.grouped, backlog_limit)
    return int(results[-1] or 0)


def _log_entry(refusal: Refusal, now: float) -> bytes:
    """A rejected-events log record: what was refused and why, never the event's identifiers."""
    entry: dict[str, Any] = {"time": now, "messageId": refusal.message_id, "reason": refusal.reason,
                             "rejection_code": refusal.code}
    if refusal.destination is not None:
        entry["destination"] = refusal.destination
        entry["mapping"] = refusal.mapping
    return orjson.dumps(entry)
