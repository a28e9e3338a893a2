"""Splitting a batch TikTok refused permanently: when it mixes audiences, it is replaced by two halves (by
audience), recorded in its place, so each half is sent on its own and only the audience TikTok refuses ends
dead. Repeated on a refused half, this bisects down to the refused audience."""

from __future__ import annotations

import structlog

from worker import keys
from worker.context import WorkerContext
from worker.lane_cut import LanePlan
from worker.lane_plan import Work, encode_payload, split_targets, wire_rows
from worker.ledger import BatchRecord
from worker.tiktok.errors import TikTokError

log = structlog.get_logger(__name__)



def split_batch(ctx: WorkerContext, lane: str, record: BatchRecord, work: Work, exc: TikTokError,
                plan: LanePlan | None, replay_queue: str | None) -> list[tuple[BatchRecord, Work]]:
    """Replace a refused batch of several audiences by two halves (by audience), recorded in its place."""
    halves: list[tuple[BatchRecord, Work]] = []
    pipe = ctx.redis.pipeline(transaction=True)
    for index, part in enumerate(split_targets(work)):
        half = BatchRecord(
            id=f"{record.id}.{index + 1}", target=next(iter(part)), destination=record.destination,
            advertiser_id=sorted({t.split('|')[1] for t in part})[0], audience_id="", action=record.action,
            rows=len(wire_rows(part, record.targets)), accepted_first=record.accepted_first,
            accepted_last=record.accepted_last, position=record.position_of(next(iter(part))),
            targets={t: record.targets[t] for t in part},
            positions={t: record.position_of(t) for t in part},
            advertiser_ids=sorted({t.split('|')[1] for t in part}), split_from=record.id, phase=record.phase,
            replays=record.replays, attempts=record.attempts,
            last_code=exc.code, last_message=f"split from {record.id} after TikTok refused it: {exc.message}",
            last_request_id=exc.request_id)
        for target, ops in part.items():
            audience_id = record.targets[target]
            half.audiences[audience_id] = half.audiences.get(audience_id, 0) + len(ops)
        ids = list(half.audiences)
        half.audience_id = ids[0] if len(ids) == 1 else f"{len(ids)} audiences"
        ctx.ledger.stage(pipe, half, encode_payload(part))
        halves.append((half, part))
    ctx.ledger.stage_discard(pipe, record)
    if plan is not None:
        at = plan.batch_ids.index(record.id)
        plan.batch_ids[at : at + 1] = [h.id for h, _ in halves]
        pipe.set(keys.lane_plan(lane), plan.dumps())
    if replay_queue is not None:
        pipe.lrem(replay_queue, 1, record.id)
        for half, _ in reversed(halves):
            pipe.lpush(replay_queue, half.id)
    pipe.execute()
    log.warning("batch_split", batch=record.id, lane=lane, halves=[h.id for h, _ in halves],
                code=exc.code, message=exc.message)
    return halves
