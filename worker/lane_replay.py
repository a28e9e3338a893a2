"""Re-delivering a batch an operator asked to replay (worker.replay queues it on its lane).

The lane drains its replay queue before new work, under the same lock and rate limit. At send time, per
audience, rows that a newer delivered operation on the same user supersedes are dropped (all of them: the
batch is refused, dead again with that reason). Audience ids are found again (a batch that died because its
audience was not the advertiser's is checked again: the operator may have fixed the audience meanwhile). A
replay interrupted by a throttle, a failure or a crash stays queued until it is delivered or dead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from worker import keys
from worker.lane_plan import decode_payload, encode_payload, wire_rows
from worker.ledger import OPEN_STATUSES
from worker.policy import Stop

if TYPE_CHECKING:
    from worker.lane import LaneDrain
    from worker.lane_resolve import Resolver

# A replay whose audience is still being resolved (its create or check backing off) looks again this soon.
RESOLVE_RECHECK = 1.0


async def replay_one(drain: LaneDrain, resolver: Resolver, batch_id: str) -> None:
    ctx = drain.ctx
    queue = keys.lane_replay(drain.lane)
    record = ctx.ledger.get(batch_id)
    payload = ctx.ledger.payload(batch_id) if record is not None else None
    if record is None or payload is None or record.status not in OPEN_STATUSES:
        ctx.redis.lrem(queue, 1, batch_id)
        return
    work = decode_payload(payload, record.target)
    found = await resolver.resolve(list(work), quota=len(work))
    refused = [t for t in work if t in found.refused]
    if refused:
        error = found.refused[refused[0]]
        ctx.ledger.update(record, status="dead", finished_at=time.time(), last_code=error.code,
                          last_message=error.message, last_request_id=error.request_id)
        ctx.redis.lrem(queue, 1, batch_id)
        return
    if any(t not in found.audience_of for t in work):
        raise Stop("resolving", time.time() + RESOLVE_RECHECK)
    dropped = 0
    for target, ops in list(work.items()):
        gone = ctx.membership.superseded(target, record.position_of(target), ops)
        if any(gone):
            work[target] = [op for op, superseded in zip(ops, gone, strict=True) if not superseded]
            dropped += sum(gone)
            if not work[target]:
                del work[target]
    targets = {t: found.audience_of[t] for t in work}
    audiences: dict[str, int] = {}
    for target, ops in work.items():
        audiences[targets[target]] = audiences.get(targets[target], 0) + len(ops)
    if not work:
        ctx.ledger.update(record, status="dead", superseded_rows=record.superseded_rows + dropped,
                          last_message=f"replay refused: all {dropped} rows are superseded by newer delivered "
                                       "operations on the same users")
        ctx.redis.lrem(queue, 1, batch_id)
        return
    changes: dict[str, object] = {"targets": targets, "audiences": audiences}
    if dropped:
        ctx.redis.set(keys.batch_rows(batch_id), encode_payload(work))
        changes.update(rows=len(wire_rows(work, targets)), superseded_rows=record.superseded_rows + dropped)
    ctx.ledger.update(record, **changes)
    halves = await drain.send(record, work, replay_queue=queue)
    if not halves:
        ctx.redis.lrem(queue, 1, batch_id)
