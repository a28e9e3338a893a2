"""Draining one target: the heart of delivery.

A drain holds the target's lock and, in order:
1. re-delivers batches an operator asked to replay (oldest work first, minus rows a newer delivered operation
   supersedes);
2. finishes the target's current *plan* (the batches cut from the head of its stream by an earlier drain that
   was interrupted by a throttle, a failure or a crash) exactly as it was cut, so batch ids and order hold;
3. cuts a new plan from the head of the stream when a full batch is waiting or the oldest operation has waited
   the flush interval, records its batches in the ledger, sends them, and only then trims the stream.

Whatever stops a drain early (throttle, backoff, pause) leaves the target in the ready index with the time it
is due again; nothing sleeps in a worker.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import orjson
import structlog

from worker import keys, pause
from worker.audiences import audience_for
from worker.batching import plan_requests
from worker.context import WorkerContext
from worker.destinations import ConfigError, Destination
from worker.keys import Target
from worker.ledger import OPEN_STATUSES, BatchRecord
from worker.operations import (
    Action,
    PackedOperation,
    decode_entry,
    encode_entry,
    encode_operations,
    unpack_all,
)
from worker.queue import ENTRY_FIELD
from worker.target_lock import TargetLock
from worker.tiktok.errors import AuthError, PermanentError, ThrottledError, TikTokError, TransientError

log = structlog.get_logger(__name__)

_COMPLETE = Path(__file__).with_name("drain_complete.lua").read_text()
_READ_CHUNK = 512
# A drain that finds its target locked looks again this soon (see Drainer.run).
BUSY_RECHECK = 1.0


@dataclass(slots=True)
class Plan:
    batch_ids: list[str]
    first: str
    position: str  # id of the last stream entry the plan consumed
    operations: int  # operations consumed from the stream (before collapsing)


class Stop(Exception):
    """A drain ends early; the target has been rescheduled. ``outcome`` says why (for logs and tests)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


def _entry_seconds(entry_id: str) -> float:
    return int(entry_id.split("-", 1)[0]) / 1000.0


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq) + 1}"


def batch_id_for(target: str, first: str, last: str, index: int) -> str:
    return hashlib.sha1(f"{target}|{first}|{last}|{index}".encode()).hexdigest()[:20]


def backoff_delay(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: half fixed, half random, so retries of many batches spread out."""
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay / 2 + random.uniform(0, delay / 2)


class Drainer:
    def __init__(self, ctx: WorkerContext, target_name: str) -> None:
        self.ctx = ctx
        self.name = target_name
        self.target = Target.parse(target_name)
        self.settings = ctx.settings
        self.redis = ctx.redis
        self.lock = TargetLock(ctx.redis, target_name, ctx.settings.lock_ttl)
        self._complete = ctx.redis.register_script(_COMPLETE)
        self.delivered_batches = 0
        # Rows of batches this drain cut itself, by batch id: sent from memory instead of read back from the
        # ledger (a round trip and a decode per batch). A plan cut by an earlier drain is read back.
        self._cut_rows: dict[str, list[PackedOperation]] = {}

    # -- entry point ---------------------------------------------------------------------------------------

    async def run(self) -> str:
        if not self.lock.acquire():
            # Another drainer holds the target and reschedules it when it finishes. But the claim that started
            # this task pushed the target a whole lease away, and the holder may have rescheduled it just
            # before that claim, or died: look again soon rather than a lease later.
            self.redis.zadd(keys.READY, {self.name: time.time() + BUSY_RECHECK}, lt=True)
            return "busy"
        try:
            return await self._drain()
        except Stop as stop:
            return stop.outcome
        finally:
            self.lock.release()

    async def _drain(self) -> str:
        deadline = time.monotonic() + self.settings.drain_budget
        while True:
            if not self.lock.extend():  # a drainer that lost its target must not cut (or overwrite) a plan
                raise Stop("lost-lock")
            destination = self._destination()
            await self._run_replays(destination)
            plan = self._load_plan() or self._cut_plan()
            if plan is None:
                break
            await self._run_plan(destination, plan)
            self._acknowledge(plan)
            if time.monotonic() > deadline:
                break
        self._reschedule_by_backlog()
        return "drained" if self.delivered_batches else "idle"

    # -- scheduling -----------------------------------------------------------------------------------------

    def _reschedule(self, at: float, outcome: str) -> Stop:
        self.redis.zadd(keys.READY, {self.name: at})
        return Stop(outcome)

    def _reschedule_by_backlog(self) -> None:
        """Leave the target in the ready index exactly when there is work left, due when it should run.

        Removing first and then looking closes the race with the producer, which writes its entry before it
        marks the target: whichever order they interleave in, a new entry leaves the target marked."""
        self.redis.zrem(keys.READY, self.name)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.pending_count(self.name))
        pipe.xrange(keys.stream(self.name), count=1)
        pipe.exists(keys.plan(self.name), keys.replay_queue(self.name))
        count, head, unfinished = pipe.execute()
        if not head and not unfinished:
            return
        now = time.time()
        if unfinished or int(count or 0) >= self.settings.batch_size:
            due = now
        else:
            due = _entry_seconds(head[0][0].decode()) + self.settings.flush_interval
        self.redis.zadd(keys.READY, {self.name: max(due, now)})

    # -- destination and pause -------------------------------------------------------------------------------

    def _destination(self) -> Destination:
        destination = self.ctx.destinations.get(self.target.destination)
        if destination is None:
            log.warning("destination_not_configured", target=self.name)
            raise self._reschedule(time.time() + self.settings.pause_recheck, "unconfigured")
        if pause.pause_info(self.redis, destination.id):
            raise self._reschedule(time.time() + self.settings.pause_recheck, "paused")
        return destination

    def _token(self, destination: Destination) -> str:
        try:
            return destination.access_token()
        except ConfigError as exc:
            pause.pause(self.redis, destination.id, reason=str(exc), code=None)
            log.error("destination_paused", destination=destination.id, reason=str(exc))
            raise self._reschedule(time.time() + self.settings.pause_recheck, "paused") from None

    # -- plans ----------------------------------------------------------------------------------------------

    def _load_plan(self) -> Plan | None:
        raw = self.redis.get(keys.plan(self.name))
        return Plan(**orjson.loads(raw)) if raw else None

    def _cut_plan(self) -> Plan | None:
        """Read a batch's worth from the head of the stream and record its batches, if one is due."""
        stream = keys.stream(self.name)
        pending = int(self.redis.get(keys.pending_count(self.name)) or 0)
        entries: list[tuple[str, list[list[str]]]] = []
        total = 0
        start = "-"
        full = False
        while not full:
            chunk = cast(list[tuple[bytes, dict[bytes, bytes]]],
                         self.redis.xrange(stream, min=start, count=_READ_CHUNK))
            if not chunk:
                break
            for raw_id, fields in chunk:
                packed = orjson.loads(fields[ENTRY_FIELD.encode()])
                if total and total + len(packed) > self.settings.batch_size:
                    full = True
                    break
                entries.append((raw_id.decode(), packed))
                total += len(packed)
            start = "(" + chunk[-1][0].decode()
            if len(chunk) < _READ_CHUNK:
                break
        if not entries:
            return None
        first, last = entries[0][0], entries[-1][0]
        due_at = _entry_seconds(first) + self.settings.flush_interval
        if not full and pending < self.settings.batch_size and due_at > time.time():
            raise self._reschedule(due_at, "waiting")
        operations = unpack_all(p for _, packed in entries for p in packed)
        requests = plan_requests(operations, self.settings.batch_size)
        pipe = self.redis.pipeline(transaction=True)
        batch_ids = []
        for index, request in enumerate(requests):
            record = BatchRecord(
                id=batch_id_for(self.name, first, last, index),
                target=self.name,
                destination=self.target.destination,
                advertiser_id=self.target.advertiser_id,
                audience_id=self.target.audience,
                action=request.action,
                rows=len(request.operations),
                accepted_first=_entry_seconds(first),
                accepted_last=_entry_seconds(last),
                position=last,
            )
            self.ctx.ledger.stage(pipe, record, encode_operations(request.operations))
            batch_ids.append(record.id)
            self._cut_rows[record.id] = request.operations
        plan = Plan(batch_ids=batch_ids, first=first, position=last, operations=total)
        # Records and plan in one transaction: a crash leaves either both or neither.
        pipe.set(keys.plan(self.name), orjson.dumps(asdict(plan)))
        pipe.execute()
        return plan

    async def _run_plan(self, destination: Destination, plan: Plan) -> None:
        for record in self.ctx.ledger.get_many(plan.batch_ids):
            if record is None or record.status in ("delivered", "dead"):
                continue
            operations = self._cut_rows.pop(record.id, None)
            if operations is None:
                payload = self.ctx.ledger.payload(record.id)
                if payload is None:
                    log.error("batch_payload_missing", batch=record.id)
                    continue
                operations = decode_entry(payload)
            await self._send(destination, record, operations)

    def _acknowledge(self, plan: Plan) -> None:
        left = self._complete(
            keys=[keys.lock(self.name), keys.stream(self.name), keys.pending_count(self.name),
                  keys.plan(self.name)],
            args=[self.lock.token, _next_id(plan.position), plan.operations],
        )
        if int(left) < 0:
            raise Stop("lost-lock")
        self.redis.decrby(keys.BACKLOG, plan.operations)

    # -- replays ---------------------------------------------------------------------------------------------

    async def _run_replays(self, destination: Destination) -> None:
        queue = keys.replay_queue(self.name)
        for raw in cast(list[bytes], self.redis.lrange(queue, 0, -1)):
            batch_id = raw.decode()
            record = self.ctx.ledger.get(batch_id)
            payload = self.ctx.ledger.payload(batch_id)
            # A replay that was throttled, failed transiently, paused or crashed stays queued until it is
            # delivered or dead, exactly like a batch of a plan.
            if record is None or payload is None or record.status not in OPEN_STATUSES:
                self.redis.lrem(queue, 1, batch_id)
                continue
            operations = decode_entry(payload)
            superseded = self.ctx.membership.superseded(self.name, record.position, operations)
            if any(superseded):
                operations = [op for op, gone in zip(operations, superseded, strict=True) if not gone]
                dropped = len(superseded) - len(operations)
                if not operations:
                    self.ctx.ledger.update(
                        record, status="dead", superseded_rows=record.superseded_rows + dropped,
                        last_message=f"replay refused: all {dropped} rows are superseded by newer delivered "
                                     "operations on the same users")
                    self.redis.lrem(queue, 1, batch_id)
                    continue
                self.redis.set(keys.batch_rows(batch_id), encode_entry([op.pack() for op in operations]))
                self.ctx.ledger.update(record, rows=len(operations),
                                       superseded_rows=record.superseded_rows + dropped)
            await self._send(destination, record, operations)
            self.redis.lrem(queue, 1, batch_id)

    # -- sending ---------------------------------------------------------------------------------------------

    async def _audience_id(self, destination: Destination, token: str) -> str:
        return await audience_for(self.ctx, destination, token, self.target)

    async def _send(self, destination: Destination, record: BatchRecord,
                    operations: list[PackedOperation]) -> None:
        """Send one batch. Returns when it is delivered or dead; raises Stop when it must wait."""
        now = time.time()
        if record.next_attempt_at and record.next_attempt_at > now:
            raise self._reschedule(record.next_attempt_at, "backoff")
        if pause.pause_info(self.redis, destination.id):  # paused by another drainer since this one began
            raise self._reschedule(now + self.settings.pause_recheck, "paused")
        token = self._token(destination)
        token_id = destination.token_id()
        wait = self.ctx.limiter.acquire(token_id)
        if wait > 0:
            raise self._reschedule(now + self._wait_in_line(token_id, wait), "rate-limited")
        self.redis.zrem(keys.rate_waiters(token_id), self.name)
        if not self.lock.extend():
            raise Stop("lost-lock")
        try:
            # An attempt counts from before the audience is resolved, so a failing create or ownership check
            # backs off and meets the retry window exactly like a failing delivery.
            self.ctx.ledger.update(record, status="delivering", attempts=record.attempts + 1,
                                   first_attempt_at=record.first_attempt_at or now, next_attempt_at=None)
            audience_id = await self._audience_id(destination, token)
            if audience_id != record.audience_id:
                self.ctx.ledger.update(record, audience_id=audience_id)
            if not self.lock.extend():  # resolving the audience may have taken a call of its own
                raise Stop("lost-lock")
            response = await self.ctx.client.send_mapping(
                token, self.target.advertiser_id, cast(Action, record.action), audience_id,
                [op.cells for op in operations]
            )
        except ThrottledError as exc:
            cooldown = max(exc.retry_after or 0.0, self.settings.throttle_cooldown)
            self.ctx.limiter.throttle(token_id, cooldown)
            self._record_failure(record, "retrying", exc)
            raise self._reschedule(time.time() + cooldown, "throttled") from None
        except TransientError as exc:
            # The window and the backoff count transient failures only: time spent throttled or paused, and
            # the attempts it took, say nothing about whether TikTok will ever take this batch.
            failing_since = record.failing_since or now
            if time.time() - failing_since >= self.settings.retry_window:
                self._record_failure(record, "dead", exc, failures=record.failures + 1,
                                     failing_since=failing_since)
                log.error("batch_dead", batch=record.id, target=self.name, code=exc.code,
                          reason="retry window exhausted")
                return
            delay = backoff_delay(record.failures + 1, self.settings.backoff_base, self.settings.backoff_max)
            self._record_failure(record, "retrying", exc, next_attempt_at=time.time() + delay,
                                 failures=record.failures + 1, failing_since=failing_since)
            raise self._reschedule(time.time() + delay, "transient") from None
        except AuthError as exc:
            pause.pause(self.redis, destination.id, reason=exc.message, code=exc.code)
            self._record_failure(record, "paused", exc)
            log.error("destination_paused", destination=destination.id, code=exc.code, message=exc.message)
            raise self._reschedule(time.time() + self.settings.pause_recheck, "paused") from None
        except PermanentError as exc:
            self._record_failure(record, "dead", exc)
            log.error("batch_dead", batch=record.id, target=self.name, code=exc.code, message=exc.message,
                      request_id=exc.request_id)
            return
        # Membership first: a crash between the two leaves the batch "delivering", so it is sent and recorded
        # again (recording is idempotent), never "delivered" with its users missing from replay's check.
        self.ctx.membership.record(self.name, record.action, record.position, operations)
        self.ctx.ledger.update(record, status="delivered", last_code=response.code,
                               last_message=response.message, last_request_id=response.request_id,
                               finished_at=time.time())
        self.delivered_batches += 1

    def _wait_in_line(self, token_id: str, wait: float) -> float:
        """How long to wait for a slot the limiter refused. Every target refused at once would otherwise come
        back at the same instant for one slot (N targets: N drain tasks per slot); instead the targets waiting
        for a token form a line, in the order they were first refused, and each comes back at its own slot."""
        now = time.time()
        interval = 1.0 / self.settings.rate_limit_qps
        waiting = keys.rate_waiters(token_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(waiting, {self.name: now}, nx=True)
        pipe.zrank(waiting, self.name)
        pipe.zcard(waiting)
        _, rank, count = pipe.execute()
        # Whoever joined longer ago than the whole line takes to serve, with room for cooldowns, no longer
        # asks (its destination paused, say): it must not hold up the others.
        self.redis.zremrangebyscore(waiting, "-inf", now - (2 * count * interval + wait + 60))
        return wait + int(rank or 0) * interval

    def _record_failure(self, record: BatchRecord, status: str, exc: TikTokError,
                        next_attempt_at: float | None = None, **more: object) -> None:
        changes: dict[str, object] = {
            "status": status, "last_code": exc.code if exc.code is not None else exc.http_status,
            "last_message": exc.message, "last_request_id": exc.request_id or "",
            "next_attempt_at": next_attempt_at, **more,
        }
        if status == "dead":
            changes["finished_at"] = time.time()
        self.ctx.ledger.update(record, **changes)
