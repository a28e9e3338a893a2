"""Draining one target: the heart of delivery.

A drain holds the target's lock and, in order:
1. re-delivers batches an operator asked to replay (oldest work first, minus rows a newer delivered operation
   supersedes);
2. finishes the target's current *plan* (the batches cut from the head of its stream by an earlier drain that
   was interrupted by a throttle, a failure or a crash) exactly as it was cut, so batch ids and order hold;
3. cuts a new plan from the head of the stream when a full batch is waiting, the oldest operation has waited
   the flush interval, or the whole intake has gone quiet (``TTA_QUIET_FLUSH``: nothing more is coming to fill
   the batch), records its batches in the ledger, sends them, and only then trims the stream.

Whatever stops a drain early (throttle, backoff, pause) leaves the target in the ready index with the time it
is due again; nothing sleeps in a worker, but for a rate-limit slot the drain reserved at most
:data:`RESERVE_AHEAD` ahead (the other drains of its task go on meanwhile).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import structlog

from worker import keys, pause, shutdown
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
from worker.redis_memory import is_out_of_memory
from worker.target_lock import TargetLock
from worker.tiktok.errors import AuthError, PermanentError, ThrottledError, TikTokError, TransientError

log = structlog.get_logger(__name__)

_COMPLETE = Path(__file__).with_name("drain_complete.lua").read_text()
_FINISH = Path(__file__).with_name("drain_finish.lua").read_text()
_READ_CHUNK = 512
# A drain that finds its target locked looks again this soon (see Drainer.run).
BUSY_RECHECK = 1.0
# How far ahead a drain reserves its rate-limit slot and waits for it in place: drains contending for one token
# take turns instead of each being put back in the ready index (a Celery task, a lock and a look) per refusal.
RESERVE_AHEAD = 0.5


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
        self.delivered_batches = 0
        # Records and rows of batches this drain cut itself, by batch id: sent from memory instead of read
        # back from the ledger (round trips and decoding per batch). A plan cut by an earlier drain is read
        # back.
        self._cut: dict[str, tuple[BatchRecord, list[PackedOperation]]] = {}
        # Whether the pause flag was read since the last call to TikTok (the look at the top of each round
        # reads it): the first send of a round need not read it again.
        self._pause_fresh = False
        self._released = False  # by _reschedule_by_backlog, with the lock's token
        self._cut_full = False  # whether the last cut stopped at a full batch (more may be waiting)
        self._renewed = 0.0  # monotonic time the lock was last taken or renewed

    # -- entry point ---------------------------------------------------------------------------------------

    async def run(self) -> str:
        # One round trip: take the lock and take the drain's first look (wasted only when the lock is taken).
        destination = self.ctx.destinations.get(self.target.destination)
        pipe = self.redis.pipeline(transaction=False)
        self.lock.stage_acquire(pipe)
        self._stage_look(pipe, destination)
        acquired, *look = pipe.execute()
        self._renewed = time.monotonic()
        if not acquired:
            # Another drainer holds the target and reschedules it when it finishes. But the claim that started
            # this task pushed the target a whole lease away, and the holder may have rescheduled it just
            # before that claim, or died: look again soon rather than a lease later.
            self.redis.zadd(keys.READY, {self.name: time.time() + BUSY_RECHECK}, lt=True)
            return "busy"
        try:
            return await self._drain(destination, look)
        except Stop as stop:
            return stop.outcome
        finally:
            if not self._released:
                self.lock.release()

    def _stage_look(self, pipe: Any, destination: Destination | None) -> None:
        """Queue the reads a round of the drain starts with: the replay queue, the plan, the pending count, the
        head of the stream and (for a configured destination) the pause flag."""
        pipe.lrange(keys.replay_queue(self.name), 0, -1)
        pipe.get(keys.plan(self.name))
        pipe.get(keys.pending_count(self.name))
        pipe.xrange(keys.stream(self.name), count=_READ_CHUNK)
        pipe.exists(keys.INTAKE_RECENT)
        if destination is not None:
            pipe.get(keys.paused(destination.id))

    async def _drain(self, configured: Destination | None = None, look: list[Any] | None = None) -> str:
        """``look`` is what :meth:`_stage_look` read for ``configured`` as the lock was taken (None: look
        first, renewing the lock)."""
        deadline = time.monotonic() + self.settings.drain_budget
        while True:
            if look is None:  # one round trip: renew the lock and look
                configured = self.ctx.destinations.get(self.target.destination)
                pipe = self.redis.pipeline(transaction=False)
                self.lock.stage_extend(pipe)
                self._stage_look(pipe, configured)
                extended, *look = pipe.execute()
                if not extended:  # a drainer that lost its target must not cut (or overwrite) a plan
                    raise Stop("lost-lock")
                self._renewed = time.monotonic()
            replays, raw_plan, pending, head, intake_busy, *paused = look
            look = None
            destination = self._destination(configured, paused[0] if paused else None)
            self._pause_fresh = True
            if replays:
                await self._run_replays(destination, cast(list[bytes], replays))
                plan = self._load_plan() or self._cut_plan()  # read again: the replays took a while
            elif raw_plan:
                plan = Plan(**orjson.loads(raw_plan))
            else:
                plan = self._cut_plan(int(pending or 0), cast(list[tuple[bytes, dict[bytes, bytes]]], head),
                                      quiet=not intake_busy)
            if plan is None:
                break
            cut_whole_stream = bool(plan.batch_ids) and plan.batch_ids[0] in self._cut and not self._cut_full
            if not await self._run_plan(destination, plan):
                self._acknowledge(plan)
            # A plan cut from everything the stream held (less than a full batch) leaves nothing due: what
            # came in meanwhile is scheduled by _reschedule_by_backlog, without another look here.
            if cut_whole_stream or time.monotonic() > deadline or shutdown.requested():
                break
        self._reschedule_by_backlog()
        return "drained" if self.delivered_batches else "idle"

    # -- scheduling -----------------------------------------------------------------------------------------

    def _reschedule(self, at: float, outcome: str) -> Stop:
        self.redis.zadd(keys.READY, {self.name: at})
        return Stop(outcome)

    def _reschedule_by_backlog(self) -> None:
        """Leave the target in the ready index exactly when there is work left, due when it should run, and
        release the lock: one script call (drain_finish.lua, which says why it removes before it looks)."""
        self.redis.eval(_FINISH, 6, keys.READY, self.lock.key, keys.pending_count(self.name),
                        keys.stream(self.name), keys.plan(self.name), keys.replay_queue(self.name),
                        self.name, self.lock.token, time.time(), self.settings.batch_size,
                        self.settings.flush_interval)
        self._released = True

    # -- destination and pause -------------------------------------------------------------------------------

    def _destination(self, destination: Destination | None, paused: bytes | None) -> Destination:
        if destination is None:
            log.warning("destination_not_configured", target=self.name)
            raise self._reschedule(time.time() + self.settings.pause_recheck, "unconfigured")
        if paused:
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

    def _cut_plan(self, pending: int | None = None,
                  head: list[tuple[bytes, dict[bytes, bytes]]] | None = None,
                  quiet: bool | None = None) -> Plan | None:
        """Read a batch's worth from the head of the stream and record its batches, if one is due.

        ``pending``, ``head`` (the first chunk of the stream) and ``quiet`` (whether the intake-recent marker
        was absent) are passed when the caller already read them.
        """
        stream = keys.stream(self.name)
        if pending is None:
            pending = int(self.redis.get(keys.pending_count(self.name)) or 0)
        entries: list[tuple[str, list[list[str]]]] = []
        total = 0
        start = "-"
        full = False
        while not full:
            if head is not None:
                chunk, head = head, None
            else:
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
        self._cut_full = full
        if not entries:
            return None
        first, last = entries[0][0], entries[-1][0]
        due_at = _entry_seconds(first) + self.settings.flush_interval
        if not full and pending < self.settings.batch_size and due_at > time.time() and not self._quiet(quiet):
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
            self._cut[record.id] = (record, request.operations)
        plan = Plan(batch_ids=batch_ids, first=first, position=last, operations=total)
        # Records and plan in one transaction: a crash leaves either both or neither.
        pipe.set(keys.plan(self.name), orjson.dumps(asdict(plan)))
        pipe.execute()
        return plan

    def _quiet(self, seen: bool | None) -> bool:
        """Whether the intake has gone quiet, so a partial batch need not wait (``seen``: as read already)."""
        if not self.settings.quiet_flush:
            return False
        if seen is None:
            seen = not self.redis.exists(keys.INTAKE_RECENT)
        return seen

    async def _run_plan(self, destination: Destination, plan: Plan) -> bool:
        """Send the plan's open batches; True if the last one's delivery also acknowledged the plan."""
        cut = [self._cut.pop(batch_id, None) for batch_id in plan.batch_ids]
        work: list[tuple[BatchRecord, list[PackedOperation] | None]]
        if all(c is not None for c in cut):  # cut by this drain just now: every record is "pending"
            work = [c for c in cut if c is not None]
        else:
            work = [(r, None) for r in self.ctx.ledger.get_many(plan.batch_ids)
                    if r is not None and r.status not in ("delivered", "dead")]
        acknowledged = False
        for index, (record, operations) in enumerate(work):
            if operations is None:
                payload = self.ctx.ledger.payload(record.id)
                if payload is None:
                    log.error("batch_payload_missing", batch=record.id)
                    continue
                operations = decode_entry(payload)
            last = index == len(work) - 1
            acknowledged = await self._send(destination, record, operations, plan if last else None)
        return acknowledged

    def _stage_acknowledge(self, pipe: Any, plan: Plan) -> None:
        pipe.eval(_COMPLETE, 5, keys.lock(self.name), keys.stream(self.name), keys.pending_count(self.name),
                  keys.plan(self.name), keys.BACKLOG, self.lock.token, _next_id(plan.position),
                  plan.operations)

    def _acknowledge(self, plan: Plan) -> None:
        pipe = self.redis.pipeline(transaction=False)
        self._stage_acknowledge(pipe, plan)
        (left,) = pipe.execute()
        if int(left) < 0:
            raise Stop("lost-lock")

    # -- replays ---------------------------------------------------------------------------------------------

    async def _run_replays(self, destination: Destination, queued: list[bytes]) -> None:
        queue = keys.replay_queue(self.name)
        for raw in queued:
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
                    operations: list[PackedOperation], acknowledge: Plan | None = None) -> bool:
        """Send one batch. Returns when it is delivered or dead; raises Stop when it must wait.

        With ``acknowledge``, a delivery also acknowledges that plan in the same transaction; returns whether
        it did."""
        now = time.time()
        if record.next_attempt_at and record.next_attempt_at > now:
            raise self._reschedule(record.next_attempt_at, "backoff")
        token = self._token(destination)
        token_id = destination.token_id()
        # A slot per TikTok call: the mapping call, and before it, for an audience this process has not
        # resolved yet, the create or ownership check that may come first (a slot spent for nothing when
        # another process already resolved it: once per audience and process).
        resolving = self.ctx.audience_ids.get(self.name) is None
        slots = await self._reserve_slots(token_id, 2 if resolving else 1, now)
        # One round trip: leave the line for rate slots, renew the lock, see whether TikTok throttled the token
        # while this drain waited for its slot, and whether another drainer paused the destination since this
        # one began (unless the look just read that).
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(keys.rate_waiters(token_id), self.name)
        self.lock.stage_extend(pipe)
        pipe.pttl(keys.cooldown(token_id))
        if not self._pause_fresh:
            pipe.get(keys.paused(destination.id))
        _, extended, cooldown_ms, *paused = pipe.execute()
        if not extended:
            raise Stop("lost-lock")
        self._renewed = time.monotonic()
        if paused and paused[0]:
            raise self._reschedule(now + self.settings.pause_recheck, "paused")
        if int(cooldown_ms) > 0:
            raise self._reschedule(time.time() + int(cooldown_ms) / 1000, "throttled")
        self._pause_fresh = False
        audience_id = self.ctx.audience_ids.get(self.name)
        # The audience id goes into the ledger with the next write of this record, not a write of its own.
        resolved: dict[str, Any] = {}
        if audience_id is not None and audience_id != record.audience_id:
            resolved["audience_id"] = audience_id
        try:
            # An attempt counts from before the audience is resolved, so a failing create or ownership check
            # backs off and meets the retry window exactly like a failing delivery.
            self.ctx.ledger.update(record, status="delivering", attempts=record.attempts + 1,
                                   first_attempt_at=record.first_attempt_at or now, next_attempt_at=None,
                                   **resolved)
            resolved = {}
            if audience_id is None:
                audience_id = await self._audience_id(destination, token)
                await _sleep_until(slots[-1])  # the mapping call's own slot
                self.ctx.audience_ids[self.name] = audience_id
                if audience_id != record.audience_id:
                    resolved["audience_id"] = audience_id
                # Resolving may have made TikTok calls of its own: renew the lock before sending, unless so
                # little time passed since the last renewal that it cannot have run out.
                if time.monotonic() - self._renewed > self.settings.lock_ttl / 3:
                    if not self.lock.extend():
                        raise Stop("lost-lock")
                    self._renewed = time.monotonic()
            response = await self.ctx.client.send_mapping(
                token, self.target.advertiser_id, cast(Action, record.action), audience_id,
                [op.cells for op in operations]
            )
        except ThrottledError as exc:
            cooldown = max(exc.retry_after or 0.0, self.settings.throttle_cooldown)
            self.ctx.limiter.throttle(token_id, cooldown)
            self._record_failure(record, "retrying", exc, **resolved)
            raise self._reschedule(time.time() + cooldown, "throttled") from None
        except TransientError as exc:
            # The window and the backoff count transient failures only: time spent throttled or paused, and
            # the attempts it took, say nothing about whether TikTok will ever take this batch.
            failing_since = record.failing_since or now
            if time.time() - failing_since >= self.settings.retry_window:
                self._record_failure(record, "dead", exc, failures=record.failures + 1,
                                     failing_since=failing_since, **resolved)
                log.error("batch_dead", batch=record.id, target=self.name, code=exc.code,
                          reason="retry window exhausted")
                return False
            delay = backoff_delay(record.failures + 1, self.settings.backoff_base, self.settings.backoff_max)
            self._record_failure(record, "retrying", exc, next_attempt_at=time.time() + delay,
                                 failures=record.failures + 1, failing_since=failing_since, **resolved)
            raise self._reschedule(time.time() + delay, "transient") from None
        except AuthError as exc:
            pause.pause(self.redis, destination.id, reason=exc.message, code=exc.code)
            self._record_failure(record, "paused", exc, **resolved)
            log.error("destination_paused", destination=destination.id, code=exc.code, message=exc.message)
            raise self._reschedule(time.time() + self.settings.pause_recheck, "paused") from None
        except PermanentError as exc:
            self._record_failure(record, "dead", exc, **resolved)
            log.error("batch_dead", batch=record.id, target=self.name, code=exc.code, message=exc.message,
                      request_id=exc.request_id)
            return False
        # Membership, the ledger's "delivered" and (for a plan's last batch) the acknowledgement in one
        # transaction: a crash before it leaves the batch "delivering", so it is sent and recorded again
        # (recording is idempotent), never "delivered" with its users missing from replay's check.
        pipe = self.redis.pipeline(transaction=True)
        self.ctx.membership.stage_record(pipe, self.name, record.action, record.position, operations)
        self.ctx.ledger.stage_update(pipe, record, status="delivered", last_code=response.code,
                                     last_message=response.message, last_request_id=response.request_id,
                                     finished_at=time.time(), **resolved)
        if acknowledge is not None:
            self._stage_acknowledge(pipe, acknowledge)
        results = pipe.execute()
        self.delivered_batches += 1
        if acknowledge is None:
            return False
        if int(results[-1]) < 0:
            raise Stop("lost-lock")
        return True

    async def _reserve_slots(self, token_id: str, count: int, now: float) -> list[float]:
        """Reserve ``count`` consecutive rate-limit slots and wait for the first; returns when each is due
        (monotonic clock). Refused (no slot within :data:`RESERVE_AHEAD`, or a cooldown): the target goes back
        in line for slots and the drain stops (a slot already granted is left unused)."""
        due: list[float] = []
        for _ in range(count):
            asked = time.monotonic()
            granted, wait = self.ctx.limiter.reserve(token_id, RESERVE_AHEAD)
            if not granted:
                raise self._reschedule(now + self._wait_in_line(token_id, wait), "rate-limited")
            due.append(asked + wait)
        await _sleep_until(due[0])  # the slot is ours; other drains of this task go on meanwhile
        return due

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


async def _sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` (monotonic clock), if it is still ahead."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# What a drain that Redis refused for lack of memory reports (worker.redis_memory).
OUT_OF_MEMORY = "out_of_memory"

# Drains one task runs at once (each holds its own target's lock, so they never touch the same target): their
# HTTP calls overlap, and one Celery task carries many small targets instead of one each.
DRAIN_CONCURRENCY = 16


async def drain_targets(ctx: WorkerContext, targets: list[str]) -> list[str]:
    """Drain several targets, up to :data:`DRAIN_CONCURRENCY` at a time; returns each one's outcome. A drain
    that fails is logged and reported as "error": its target stays in the ready index (the scheduler's lease
    brings it back), and the other targets are drained all the same."""
    gate = asyncio.Semaphore(DRAIN_CONCURRENCY)

    async def one(target: str) -> str:
        async with gate:
            if shutdown.requested():  # worker.shutdown: a stopping worker starts no new audience
                shutdown.hand_back(ctx.redis, [target])
                return shutdown.HANDED_BACK
            try:
                return await Drainer(ctx, target).run()
            except Exception as exc:
                if is_out_of_memory(exc):  # a condition, logged once per episode by the task (worker.tasks)
                    return OUT_OF_MEMORY
                log.error("drain_failed", target=target, error=f"{type(exc).__name__}: {exc}", exc_info=True)
                return "error"

    return list(await asyncio.gather(*(one(t) for t in targets)))
