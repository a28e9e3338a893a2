"""The ledger: one record per TikTok request ("batch"), kept in Redis so operators can inspect and replay.

A batch id is derived from the target and the stream entries the batch was cut from, so a batch rebuilt after
a crash has the same id and the same record. Records move through these statuses::

    pending -> delivering -> delivered
                   |  ^
                   v  |
                retrying / paused      (throttled, transient failure, destination paused)
                   |
                   v
                  dead  -> (replay) -> pending

Dead batches keep their hashed payload for ``dead_retention`` seconds; delivered records expire after
``delivered_retention``. The index sets are pruned lazily when they point at expired records.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast

import orjson
import redis

from worker import keys, metrics

Status = Literal["pending", "delivering", "retrying", "delivered", "dead", "paused"]
STATUSES: tuple[Status, ...] = ("pending", "delivering", "retrying", "delivered", "dead", "paused")
OPEN_STATUSES: frozenset[str] = frozenset({"pending", "delivering", "retrying", "paused"})


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_redis(cls, data: dict[bytes, bytes]) -> BatchRecord:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = data.get(f.name.encode())
            if raw is None:
                continue
            values[f.name] = orjson.loads(raw)
        return cls(**values)


def _encode(values: dict[str, Any]) -> dict[str, bytes]:
    return {name: orjson.dumps(value) for name, value in values.items()}


class Ledger:
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
        pipe.zadd(keys.BATCHES, {record.id: record.created_at})
        pipe.zadd(keys.batches_by_status(record.status), {record.id: now})
        pipe.zadd(keys.batches_by_target(record.target), {record.id: record.created_at})

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
        if record.status == "delivered":
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
            since: float | None = None) -> list[str]:
        if status:
            index = keys.batches_by_status(status)
        elif target:
            index = keys.batches_by_target(target)
        else:
            index = keys.BATCHES
        low = since if since is not None else "-inf"
        raw = cast(list[bytes | str], self._redis.zrevrangebyscore(index, "+inf", low, start=0, num=limit))
        return [r.decode() if isinstance(r, bytes) else r for r in raw]

    def list(self, *, status: str | None = None, target: str | None = None, audience_id: str | None = None,
             limit: int = 100, since: float | None = None) -> list[BatchRecord]:
        """Newest first. Records that expired are dropped from the indexes as they are met."""
        fetch = limit if audience_id is None and not (status and target) else max(limit * 20, 1000)
        batch_ids = self.ids(status=status, target=target if not status else None, limit=fetch, since=since)
        out: list[BatchRecord] = []
        stale: list[str] = []
        for batch_id, record in zip(batch_ids, self.get_many(batch_ids), strict=True):
            if record is None:
                stale.append(batch_id)
                continue
            if target and record.target != target:
                continue
            if audience_id and record.audience_id != audience_id:
                continue
            out.append(record)
            if len(out) >= limit:
                break
        if stale:
            self.forget(stale, target=target)
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
        for status in ("delivered", "dead"):
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
