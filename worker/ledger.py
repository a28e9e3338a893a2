"""The ledger: one record per TikTok request ("batch"), kept in Redis so operators can inspect and replay.

A batch carries rows of one or more audiences of one lane (destination): ``targets`` maps each target to the
TikTok audience id its rows go to, ``audiences`` counts rows per audience id, ``positions`` says where in each
target's stream the batch was cut (replay's supersede check), and the batch is indexed under every audience
id it holds, so ``batches list --audience ID`` finds it, and under each target whose audience id is not its own
name's (an Engage audience's ``@key`` target, or one not resolved): a target that names its audience id is
found through that id's index, so a batch of thousands of audiences writes one index entry per audience, not
two. A batch id is derived from the lane and the stream entries
the batch was cut from, so a plan read back after a crash has the same ids. A request TikTok refuses
permanently that mixes audiences is split in two (by audience) and replaced by its halves (``split_from``
names the batch they came from). Records move through these statuses::

    pending -> delivering -> delivered
                   |  ^
                   v  |
                retrying / paused      (throttled, transient failure, destination paused)
                   |
                   v
                  dead  -> (replay) -> pending

    pending -> shadow                  (a shadow destination: recorded as it would be sent, never sent)

Dead batches keep their hashed payload for ``dead_retention`` seconds; delivered records expire after
``delivered_retention``. The index sets are pruned lazily when they point at expired records.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast

import orjson
import redis

from worker import keys, lua, metrics

_INDEX = lua.source("ledger_index")

Status = Literal["pending", "delivering", "retrying", "delivered", "dead", "paused", "shadow"]
STATUSES: tuple[Status, ...] = ("pending", "delivering", "retrying", "delivered", "dead", "paused", "shadow")
OPEN_STATUSES: frozenset[str] = frozenset({"pending", "delivering", "retrying", "paused"})
# A batch in one of these is done with: it is not sent again and its payload is gone (or kept for replay).
FINISHED_STATUSES: frozenset[str] = frozenset({"delivered", "dead", "shadow"})


@dataclass(slots=True)
class BatchRecord:
    id: str
    target: str
    destination: str
    advertiser_id: str
    audience_id: str
    action: str
    rows: int
    status: str = "pending"
    attempts: int = 0
    last_code: int | None = None
    last_message: str = ""
    last_request_id: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    first_attempt_at: float | None = None
    next_attempt_at: float | None = None
    # Transient failures so far and when the first of them happened: the backoff and the retry window count
    # these only (throttles and pauses are not failures of the batch).
    failures: int = 0
    failing_since: float | None = None
    finished_at: float | None = None
    # Acceptance times (epoch seconds) of the oldest and newest operation in the batch, from stream entry ids.
    accepted_first: float | None = None
    accepted_last: float | None = None
    # Stream position the batch was cut at; orders batches of one target (replay's supersede check).
    position: str = ""
    superseded_rows: int = 0
    replays: int = 0
    # Target -> TikTok audience id its rows go to; audience id -> rows; target -> stream position cut at.
    targets: dict[str, str] = field(default_factory=dict)
    audiences: dict[str, int] = field(default_factory=dict)
    positions: dict[str, str] = field(default_factory=dict)
    advertiser_ids: list[str] = field(default_factory=list)
    split_from: str = ""
    # Order of the batch's phase in its plan: batches of one phase commute and may be sent together.
    phase: int = 0

    @property
    def target_names(self) -> list[str]:
        return list(self.targets) or [self.target]

    def position_of(self, target: str) -> str:
        return self.positions.get(target, self.position)

    def holds_audience(self, audience_id: str) -> bool:
        return self.audience_id == audience_id or audience_id in self.audiences

    def to_json(self) -> dict[str, Any]:
        # Shallow (dataclasses.asdict copies every nested dict entry by entry: a batch of thousands of
        # audiences spent more in it than in everything else the ledger does).
        return {f.name: getattr(self, f.name) for f in _FIELDS}

    @classmethod
    def from_redis(cls, data: dict[bytes, bytes]) -> BatchRecord:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = data.get(f.name.encode())
            if raw is None:
                continue
            values[f.name] = orjson.loads(raw)
        return cls(**values)


_FIELDS = fields(BatchRecord)


def _target_index_of(target: str, audience_id: str) -> str | None:
    """The index that lists ``target``'s batches when it is an audience id's (the target names ``audience_id``
    itself), else None: the target has an index of its own."""
    if audience_id and not audience_id.startswith("@") and target.rsplit("|", 1)[-1] == audience_id:
        return keys.batches_by_audience(audience_id)
    return None


def _encode(values: dict[str, Any]) -> dict[str, bytes]:
    return {name: orjson.dumps(value) for name, value in values.items()}


class Ledger:
    """The batch records in Redis: drains stage and update them in the same transactions as their plans, and
    operators list, inspect and replay them; each status keeps its record only as long as its retention."""

    def __init__(self, client: redis.Redis, *, delivered_retention: float, dead_retention: float) -> None:
        self._redis = client
        self._delivered_retention = int(delivered_retention)
        self._dead_retention = int(dead_retention)

    def stage(self, pipe: Any, record: BatchRecord, payload: bytes) -> None:
        """Queue a new batch's record and hashed payload on ``pipe``, so the caller can write them in the same
        transaction as whatever makes them reachable (a drain's plan)."""
        now = time.time()
        record.created_at = record.created_at or now
        record.updated_at = now
        pipe.hset(keys.batch(record.id), mapping=_encode(record.to_json()))
        pipe.set(keys.batch_rows(record.id), payload)
        pipe.zadd(keys.batches_by_status(record.status), {record.id: now})
        indexes = [keys.BATCHES, *(keys.batches_by_target(t) for t in record.target_names
                                   if _target_index_of(t, record.targets.get(t, "")) is None),
                   *(keys.batches_by_audience(a).encode() for a in record.audiences)]  # bytes: packed faster
        pipe.eval(_INDEX, len(indexes), *indexes, repr(record.created_at), record.id)
        if record.status == "dead":
            pipe.expire(keys.batch(record.id), self._dead_retention)
            pipe.expire(keys.batch_rows(record.id), self._dead_retention)

    def stage_discard(self, pipe: Any, record: BatchRecord) -> None:
        """Queue the removal of a record and its payload from every index (a batch replaced by its halves)."""
        pipe.delete(keys.batch(record.id), keys.batch_rows(record.id))
        pipe.zrem(keys.BATCHES, record.id)
        pipe.zrem(keys.batches_by_status(record.status), record.id)
        for target in record.target_names:
            pipe.zrem(keys.batches_by_target(target), record.id)
        for audience_id in record.audiences:
            pipe.zrem(keys.batches_by_audience(audience_id), record.id)

    def get(self, batch_id: str) -> BatchRecord | None:
        data = self._redis.hgetall(keys.batch(batch_id))
        return BatchRecord.from_redis(data) if data else None  # type: ignore[arg-type]

    def get_many(self, batch_ids: list[str]) -> list[BatchRecord | None]:
        pipe = self._redis.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.hgetall(keys.batch(batch_id))
        return [BatchRecord.from_redis(d) if d else None for d in pipe.execute()]

    def payload(self, batch_id: str) -> bytes | None:
        return self._redis.get(keys.batch_rows(batch_id))  # type: ignore[return-value]

    def update(self, record: BatchRecord, **changes: Any) -> BatchRecord:
        """Apply ``changes`` to the record, move it between status indexes and set retention."""
        pipe = self._redis.pipeline(transaction=True)
        self.stage_update(pipe, record, **changes)
        pipe.execute()
        return record

    def stage_update(self, pipe: Any, record: BatchRecord, **changes: Any) -> BatchRecord:
        """Like :meth:`update`, queued on ``pipe`` (a transaction) so the caller can write it together with
        other work in one round trip."""
        old_status = record.status
        for name, value in changes.items():
            setattr(record, name, value)
        metrics.batch_status(old_status, record.status, record.action, record.rows)
        now = time.time()
        record.updated_at = now
        key = keys.batch(record.id)
        pipe.hset(key, mapping=_encode({**changes, "updated_at": now}))
        if record.status != old_status:
            pipe.zrem(keys.batches_by_status(old_status), record.id)
        pipe.zadd(keys.batches_by_status(record.status), {record.id: now})
        if record.status in ("delivered", "shadow"):  # kept as long as a delivered record, for the report
            pipe.delete(keys.batch_rows(record.id))
            pipe.expire(key, self._delivered_retention)
        elif record.status == "dead":
            pipe.expire(key, self._dead_retention)
            pipe.expire(keys.batch_rows(record.id), self._dead_retention)
        else:
            pipe.persist(key)
            pipe.persist(keys.batch_rows(record.id))
        return record

    def ids(self, *, status: str | None = None, target: str | None = None, limit: int = 100,
            since: float | None = None, audience_id: str | None = None) -> list[str]:
        if status:
            index = keys.batches_by_status(status)
        elif audience_id:
            index = keys.batches_by_audience(audience_id)
        elif target:
            index = _target_index_of(target, target.rsplit("|", 1)[-1]) or keys.batches_by_target(target)
        else:
            index = keys.BATCHES
        low = since if since is not None else "-inf"
        raw = cast(list[bytes | str], self._redis.zrevrangebyscore(index, "+inf", low, start=0, num=limit))
        return [r.decode() if isinstance(r, bytes) else r for r in raw]

    def list(self, *, status: str | None = None, target: str | None = None, audience_id: str | None = None,
             limit: int = 100, since: float | None = None) -> list[BatchRecord]:
        """Newest first. Records that expired are dropped from the indexes as they are met."""
        fetch = limit if not (status and (target or audience_id)) else max(limit * 20, 1000)
        batch_ids = self.ids(status=status, target=target if not status else None, limit=fetch, since=since,
                             audience_id=audience_id if not status else None)
        out: list[BatchRecord] = []
        stale: list[str] = []
        for batch_id, record in zip(batch_ids, self.get_many(batch_ids), strict=True):
            if record is None:
                stale.append(batch_id)
                continue
            if target and record.target != target:
                continue
            if audience_id and not record.holds_audience(audience_id):
                continue
            out.append(record)
            if len(out) >= limit:
                break
        if stale:
            self.forget(stale, target=target)
            if audience_id:
                self._redis.zrem(keys.batches_by_audience(audience_id), *stale)
        return out

    def forget(self, batch_ids: Sequence[str], *, target: str | None = None) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(keys.BATCHES, *batch_ids)
        if target:
            pipe.zrem(keys.batches_by_target(target), *batch_ids)
        for status in STATUSES:
            pipe.zrem(keys.batches_by_status(status), *batch_ids)
        pipe.execute()

    def counts_by_status(self) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for status in STATUSES:
            pipe.zcard(keys.batches_by_status(status))
        return dict(zip(STATUSES, (int(n) for n in pipe.execute()), strict=True))

    def prune(self, older_than: float) -> int:
        """Drop index entries of records that expired (delivered and dead records carry a TTL)."""
        removed = 0
        for status in ("delivered", "dead", "shadow"):
            gone = self._expired(keys.batches_by_status(status), older_than)
            if gone:
                self.forget(gone)
                removed += len(gone)
        return removed

    def prune_targets(self, older_than: float, cursor: int = 0, count: int = 100) -> int:
        """Drop expired records from the per-target indexes of the next ``count`` or so targets, and return
        the cursor to go on from (0 once every target was seen): a pass spreads over several maintenance
        rounds. Without it those indexes would keep every batch id ever cut, whatever the retention."""
        next_cursor, targets = self._redis.sscan(keys.TARGETS, cursor, count=count)
        for raw in targets:
            index = keys.batches_by_target(raw.decode() if isinstance(raw, bytes) else raw)
            gone = self._expired(index, older_than)
            if gone:
                self._redis.zrem(index, *gone)
        return int(next_cursor)

    def prune_audiences(self, older_than: float, cursor: int = 0, count: int = 100) -> int:
        """Like :meth:`prune_targets`, for the per-audience indexes (``batches list --audience``)."""
        next_cursor, found = self._redis.scan(cursor, match=keys.batches_by_audience("*"), count=count)
        for raw in found:
            index = raw.decode() if isinstance(raw, bytes) else raw
            gone = self._expired(index, older_than)
            if gone:
                self._redis.zrem(index, *gone)
        return int(next_cursor)

    def _expired(self, index: str, older_than: float) -> Sequence[str]:
        """Ids in ``index`` scored before ``older_than`` whose records no longer exist (the oldest 5,000
        at most)."""
        old = cast(list[bytes | str], self._redis.zrangebyscore(index, "-inf", older_than, start=0, num=5000))
        candidates = [o.decode() if isinstance(o, bytes) else o for o in old]
        if not candidates:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for batch_id in candidates:
            pipe.exists(keys.batch(batch_id))
        return [b for b, alive in zip(candidates, pipe.execute(), strict=True) if not alive]
