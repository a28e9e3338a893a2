"""Cutting a lane's plan: read its due targets' streams, keep per user the latest operation by event time,
plan requests across audiences (worker.lane_plan), and record the batches and the plan in one transaction.

A plan is what makes a crash harmless: it lists the batch ids cut and, per target, how far its stream was
consumed. Only once every batch of the plan is delivered or dead are the streams trimmed to those positions
(lane_ack.lua); a drain that finds a plan finishes it exactly as it was cut, with the same ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from worker import keys, lua
from worker.context import WorkerContext
from worker.event_order import latest_per_user
from worker.lane_plan import LaneRequest, encode_payload, plan_lane
from worker.ledger import BatchRecord
from worker.operations import ACTION_FROM_CODE, ADID_TYPE_FROM_CODE, PackedOperation
from worker.tiktok.errors import TikTokError

# Stream entries read per target per round, and targets read per round trip.
ENTRIES_PER_TARGET = 256
FIRST_READ = 16  # entries of each target in a round's first read
_READ = lua.source("lane_read")
TARGETS_PER_READ = 500


@dataclass(slots=True)
class Chunk:
    """The head of one target's stream, as far as this round takes it."""

    target: str
    entries: list[tuple[str, list[list[Any]]]] = field(default_factory=list)  # (stream entry id, packed operations)
    operations: int = 0

    @property
    def first(self) -> str:
        return self.entries[0][0] if self.entries else ""

    @property
    def last(self) -> str:
        return self.entries[-1][0] if self.entries else ""

    def unpack(self) -> list[PackedOperation]:
        """The operations, stamped (worker.event_order.stamp): each with its event time, or where that is unknown
        (0) the time it was accepted, the ms of its stream entry's id. One comprehension over every entry, as
        operations.unpack_all unpacks one entry: a round unpacks tens of thousands of entries."""
        actions, types, new, cls = ACTION_FROM_CODE, ADID_TYPE_FROM_CODE, tuple.__new__, PackedOperation
        return [new(cls, (actions[p[0]], p[1], p[2], p[3], types[p[4]],
                          (p[5] if len(p) > 5 else 0) or accepted, p[6] if len(p) > 6 else ""))
                for entry_id, packed in self.entries for accepted in (int(entry_id.partition("-")[0]),)
                for p in packed]


@dataclass(slots=True)
class LanePlan:
    batch_ids: list[str]
    # target -> [id of the last stream entry consumed ("" if none), operations consumed]
    targets: dict[str, list[Any]]

    def dumps(self) -> bytes:
        return orjson.dumps({"batch_ids": self.batch_ids, "targets": self.targets})

    @classmethod
    def loads(cls, raw: bytes) -> LanePlan:
        return cls(**orjson.loads(raw))


def due_targets(redis: Any, lane: str, horizon: float, limit: int) -> list[str]:
    """The lane's targets due by ``horizon`` (epoch seconds), the longest waiting first."""
    raw = redis.zrangebyscore(keys.lane_due(lane), "-inf", repr(horizon), start=0, num=limit)
    return [t.decode() if isinstance(t, bytes) else t for t in raw]


def filling_targets(redis: Any, lane: str, batch_size: int, limit: int) -> list[str]:
    """Every target of the lane with work waiting, the longest waiting first, when together they hold at least
    a full request's worth (``batch_size`` operations), else none.

    A request carries rows of every audience of the lane, so a lane is full when its audiences together are,
    though none of them alone is: its drain keeps cutting full requests while intake is busy instead of
    leaving them for the flush interval (and the tail of a burst) to deliver."""
    raw = redis.zrange(keys.lane_due(lane), 0, limit - 1)
    names = [t.decode() if isinstance(t, bytes) else t for t in raw]
    if not names:
        return []
    waiting = sum(int(count or 0) for count in redis.mget([keys.pending_count(t) for t in names]))
    return names if waiting >= batch_size else []


def read_chunks(redis: Any, targets: list[str], budget: int) -> list[Chunk]:
    """Whole stream entries from the head of each target's stream, in order, until ``budget`` operations are
    taken (the first entry of a round is taken whatever its size). A target with an empty stream comes back
    with no entries (its due mark is cleared when the plan is acknowledged).

    Reads go in passes, one script call (lane_read.lua) per pass and :data:`TARGETS_PER_READ` targets: a few
    entries of every target first, then more of those that had more, each pass twice the last, so a round
    reads little beyond what it takes however many audiences share it. The stream keys go as bytes: redis-py
    packs them in about half the time of str, and a round names thousands."""
    chunks: list[Chunk] = []
    emptied: set[str] = set()  # targets whose stream held nothing
    total = 0
    for start in range(0, len(targets), TARGETS_PER_READ):
        names = targets[start : start + TARGETS_PER_READ]
        open_chunks = {name: Chunk(name) for name in names}
        count = FIRST_READ
        while open_chunks and total < budget:
            counts, ids, values = redis.eval(
                _READ, len(open_chunks), *(keys.target_keys(t).stream for t in open_chunks), count,
                " ".join("(" + c.last if c.entries else "-" for c in open_chunks.values()))
            # Every value of the answer parsed with one call, every id decoded with one (ids hold no space).
            packed_all = orjson.loads(b"[" + b",".join(values) + b"]")
            ids_all = b" ".join(ids).decode().split(" ") if ids else []
            first = 0
            for (name, chunk), read in zip(list(open_chunks.items()), counts, strict=True):
                before = chunk.operations
                entry_ids, entry_ops = ids_all[first : first + read], packed_all[first : first + read]
                first += read
                operations = sum(map(len, entry_ops))
                if operations <= budget - total:
                    # Every entry read fits (the usual read): taken whole, without a step per entry.
                    chunk.entries += zip(entry_ids, entry_ops, strict=True)
                    chunk.operations += operations
                    full = False
                else:
                    full = _take(chunk, entry_ids, entry_ops, budget - total + before, first_of_round=total == 0)
                total += chunk.operations - before
                if not read and not chunk.entries:
                    emptied.add(name)
                if full or read < count or total >= budget:
                    chunks.append(open_chunks.pop(name))
            count = min(count * 2, ENTRIES_PER_TARGET)
        chunks.extend(open_chunks.values())
        chunks[:] = [c for c in chunks if c.entries or c.target in emptied]
        if total >= budget:
            return chunks
    return chunks


def _take(chunk: Chunk, ids: list[str], packed: list[list[Any]], room: int, *, first_of_round: bool) -> bool:
    """Add whole entries (their ids, and each one's packed operations) to ``chunk`` while they fit in ``room``
    operations (the round's very first entry always does); True once one did not fit."""
    for entry_id, operations in zip(ids, packed, strict=True):
        if chunk.operations + len(operations) > room and (chunk.operations or not first_of_round):
            return True
        chunk.entries.append((entry_id, operations))
        chunk.operations += len(operations)
    return False


def batch_id_for(lane: str, chunks: Iterable[Chunk], index: int) -> str:
    return batch_id_of(plan_signature(lane, chunks), index)


def plan_signature(lane: str, chunks: Iterable[Chunk]) -> bytes:
    """What a plan's batch ids are derived from: the lane and how far each target's stream was cut."""
    return f"{lane}|{'|'.join(f'{c.target}:{c.first}:{c.last}' for c in chunks)}|".encode()


def batch_id_of(signature: bytes, index: int) -> str:
    """The id of a plan's ``index``-th batch (the same as :func:`batch_id_for`, with the signature built once
    for all of a plan's batches)."""
    return hashlib.sha1(signature + str(index).encode()).hexdigest()[:20]


def new_record(batch_id: str, lane: str, action: str, by_target: dict[str, list[PackedOperation]],
               audience_of: dict[str, str], chunks: dict[str, Chunk], rows: int) -> BatchRecord:
    """A ledger record for rows of ``by_target`` (see worker.ledger for the fields)."""
    targets = list(by_target)
    audiences: dict[str, int] = {}
    for target, ops in by_target.items():
        audience_id = audience_of.get(target, "")
        if audience_id:
            audiences[audience_id] = audiences.get(audience_id, 0) + len(ops)
    advertisers = sorted({t.split("|", 2)[1] for t in targets})
    # The targets' stream entries, read once each (a request may carry thousands of targets).
    entries = [chunks[t].entries for t in targets]
    positions = {t: e[-1][0] if e else "" for t, e in zip(targets, entries, strict=True)}
    accepted = [int(e[0][0].partition("-")[0]) for e in entries if e]
    accepted_last = [int(position.partition("-")[0]) for position in positions.values() if position]
    ids = list(audiences)
    return BatchRecord(
        id=batch_id, target=targets[0], destination=lane, advertiser_id=advertisers[0],
        audience_id=ids[0] if len(ids) == 1 else f"{len(ids)} audiences" if ids else "",
        action=action, rows=rows,
        accepted_first=min(accepted) / 1000 if accepted else None,
        accepted_last=max(accepted_last) / 1000 if accepted_last else None,
        position=chunks[targets[0]].last,
        targets={t: audience_of.get(t, "") for t in targets}, audiences=audiences,
        positions=positions, advertiser_ids=advertisers,
    )


@dataclass(slots=True)
class Cut:
    plan: LanePlan
    # Records and operations of the batches to send, in order (kept in memory: no read back from the ledger).
    work: list[tuple[BatchRecord, dict[str, list[PackedOperation]]]]
    superseded: int = 0


def cut_plan(ctx: WorkerContext, lane: str, chunks: list[Chunk], audience_of: dict[str, str],
             refused: dict[str, TikTokError]) -> Cut:
    """Plan ``chunks`` into batches and record them and the plan (one transaction). Targets in ``refused``
    (their audience cannot be used) get one dead batch each, with the reason, and are never sent."""
    by_chunk = {c.target: c for c in chunks}
    by_target: dict[str, list[PackedOperation]] = {}
    dead: dict[str, list[PackedOperation]] = {}
    work: list[tuple[str, list[PackedOperation], int]] = []
    for chunk in chunks:
        if not chunk.entries:
            continue
        ops = chunk.unpack()
        if chunk.target in refused:
            dead[chunk.target] = latest_per_user(ops, 0)
        else:
            work.append((chunk.target, ops, 0))
    superseded = 0
    for (target, _, _), (ops, dropped) in zip(work, ctx.membership.news_many(work), strict=True):
        superseded += dropped
        if ops:
            by_target[target] = ops
    requests: list[LaneRequest] = plan_lane(by_target, ctx.settings.batch_size)
    signature = plan_signature(lane, chunks)
    pipe = ctx.redis.pipeline(transaction=True)
    cut: list[tuple[BatchRecord, dict[str, list[PackedOperation]]]] = []
    batch_ids: list[str] = []
    for index, request in enumerate(requests):
        record = new_record(batch_id_of(signature, index), lane, request.action, request.by_target,
                            audience_of, by_chunk, request.rows)
        record.phase = request.phase
        ctx.ledger.stage(pipe, record, encode_payload(request.by_target))
        cut.append((record, request.by_target))
        batch_ids.append(record.id)
    dead_batches = [(target, action, [op for op in ops if op.action == action])
                    for target, ops in dead.items() for action in ("add", "delete")]
    for offset, (target, action, ops) in enumerate([d for d in dead_batches if d[2]], start=len(requests)):
        error = refused[target]
        named = target.rsplit("|", 1)[1]  # the audience id the events named (or "@key": none was created)
        record = new_record(batch_id_of(signature, offset), lane, action, {target: ops},
                            {target: named} if not named.startswith("@") else {}, by_chunk, len(ops))
        record.audience_id = record.audience_id or named
        record.status = "dead"
        record.last_code = error.code if error.code is not None else error.http_status
        record.last_message, record.last_request_id = error.message, error.request_id
        record.finished_at = record.created_at
        ctx.ledger.stage(pipe, record, encode_payload({target: ops}))
        batch_ids.append(record.id)
    plan = LanePlan(batch_ids=batch_ids,
                    targets={c.target: [c.last, c.operations] for c in chunks})
    pipe.set(keys.lane_plan(lane), plan.dumps())
    if superseded:
        pipe.hincrby(keys.METRICS, "superseded", superseded)
    pipe.execute()
    return Cut(plan, cut, superseded)

