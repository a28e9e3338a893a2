"""Replay: put dead batches back through the same path as new work.

A replayed batch goes to its lane's replay queue, which the lane's drain empties first, under the same lock and
the same rate limiter as any delivery (worker.lane_replay). The drain checks, at send time and per audience,
which rows a newer delivered operation on the same user supersedes, and drops them (or refuses the batch when
all are superseded); :func:`preview` runs the same check up front so the operator is told before anything is
sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from worker import keys
from worker.lane_plan import decode_payload
from worker.ledger import BatchRecord, Ledger
from worker.membership import Membership


@dataclass(slots=True)
class ReplayCheck:
    batch_id: str
    status: str
    rows: int
    superseded: int
    problem: str = ""  # why this batch cannot be replayed at all

    @property
    def replayable(self) -> bool:
        return not self.problem


def preview(client: redis.Redis, ledger: Ledger, batch_id: str) -> ReplayCheck:
    record = ledger.get(batch_id)
    if record is None:
        return ReplayCheck(batch_id, "unknown", 0, 0, "no such batch (or its record has expired)")
    if record.status != "dead":
        return ReplayCheck(batch_id, record.status, record.rows, 0,
                           f"batch is {record.status}; only dead batches are replayed")
    payload = ledger.payload(batch_id)
    if payload is None:
        return ReplayCheck(batch_id, record.status, record.rows, 0, "its payload has expired")
    work = decode_payload(payload, record.target)
    membership = Membership(client)
    rows = sum(len(ops) for ops in work.values())
    superseded = sum(sum(membership.superseded(target, record.position_of(target), ops))
                     for target, ops in work.items())
    check = ReplayCheck(batch_id, record.status, rows, superseded)
    if rows and superseded == rows:
        check.problem = f"all {superseded} rows are superseded by newer delivered operations"
    return check


def request_replay(client: redis.Redis, ledger: Ledger, record: BatchRecord) -> None:
    ledger.update(record, status="pending", next_attempt_at=None, first_attempt_at=None, failures=0,
                  failing_since=None, replays=record.replays + 1, finished_at=None)
    lane = keys.lane_of(record.target)
    client.rpush(keys.lane_replay(lane), record.id)
    client.zadd(keys.READY, {lane: time.time()})
