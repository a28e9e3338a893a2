"""Draining a lane: every due audience of one destination (one access token) through one rate limit.

TikTok's rate limit belongs to the token, so the token's work is scheduled as one *lane*, drained by one
worker at a time (a lock), which waits for its rate-limit slots in place: one round trip reserves the next
slot, then the drain sleeps until it (no polling, no other drain of the token contending for it). A round:

1. re-deliver batches an operator asked to replay (worker.lane_replay);
2. finish the lane's current plan (cut by an earlier drain interrupted by a throttle, a failure or a crash)
   exactly as it was cut, so batch ids and order hold;
3. otherwise take the due targets (a full batch waits, the oldest operation has waited the flush interval, or
   the whole intake has gone quiet; failing those, every target with work once together they fill a request),
   find their audience ids (worker.lane_resolve: creates of new audiences, a quota per round; an id never
   confirmed its advertiser's goes straight into requests, the one TikTok accepts confirming it), cut a plan
   of requests that mix audiences (worker.lane_cut), send it, and only then trim the streams (lane_ack.lua).

Failures follow worker.policy. A request TikTok refuses permanently that mixes audiences is split in two by
audience and each half sent on its own, so only the audience TikTok refuses goes dead (the lane then looks
unconfirmed ids up first for a while: worker.lane_resolve). Whatever stops a drain early leaves the lane in the
ready index with the time it is due again (lane_finish.lua).

A shadow destination's lane (worker.shadow) runs the same rounds without a TikTok call: its audiences are resolved
without checks or creates, and each batch is recorded with status ``shadow`` where it would be sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any, cast

import structlog

from core.destinations import ConfigError, Destination
from core.redis_memory import is_out_of_memory
from worker import keys, lua, pause, shutdown
from worker.context import WorkerContext
from worker.lane_cut import LanePlan, cut_plan, due_targets, filling_targets, read_chunks
from worker.lane_plan import Work, decode_payload, wire_rows
from worker.lane_replay import replay_one
from worker.lane_resolve import Resolver, note_foreign_refusal, stage_confirmations
from worker.lane_split import split_batch
from worker.ledger import FINISHED_STATUSES, BatchRecord
from worker.limiter import SAFETY_MARGIN
from worker.operations import Action
from worker.policy import Stop, decide
from worker.shadow import ShadowResolver, record_shadow
from worker.target_lock import TargetLock
from worker.tiktok.errors import PermanentError, TikTokError

log = structlog.get_logger(__name__)

_ACK = lua.source("lane_ack")
_FINISH = lua.source("lane_finish")
# How far ahead a slot is reserved; a wait longer than RESERVE_AHEAD is slept off before asking again, and one
# longer than WAIT_IN_PLACE (a cooldown) ends the drain instead, the lane due again when it ends.
RESERVE_AHEAD = 1.0
WAIT_IN_PLACE = 5.0
# A drain that finds its lane locked looks again this soon (the holder may be finishing).
BUSY_RECHECK = 1.0
# A drain woken this late after its slot takes a new one: the limiter's margin covers only so much variation in
# the time from slot to TikTok, and a call that lost its slot's time could land beside the next slots' calls.
LATE_SLOT = SAFETY_MARGIN / 2
# How often, at most, the lock, cooldown and pause are checked before calls granted a slot at once.
GUARD_EVERY = 0.5
DUE_AT_ONCE = 20_000
# A round cuts up to this many full requests' worth of operations: the requests of a phase then go together,
# so one lane keeps several calls in flight (and pays a round's fixed cost once for them).
REQUESTS_PER_ROUND = 4  # due targets read per round (a round takes what fits in one batch's worth of rows)



class LaneDrain:
    """One drain of one lane: holds the lane's lock, runs rounds (replays, the current plan, newly due
    audiences) until the lane is empty, the drain's budget is spent, or something makes it wait (a throttle, a
    pause, a backoff), and leaves the lane due again exactly when it should be looked at. Made per task run;
    what it learns that outlives it (audience ids, confirmations) goes to Redis and the worker's context."""

    def __init__(self, ctx: WorkerContext, lane: str) -> None:
        self.ctx = ctx
        self.lane = lane
        self.settings = ctx.settings
        self.redis = ctx.redis
        self.lock = TargetLock(ctx.redis, keys.lane_lock(lane), ctx.settings.lock_ttl)
        self.delivered = 0  # batches delivered by this drain
        self.calls = 0  # TikTok calls made by this drain
        self._destination: Destination | None = None
        self._token = ""
        self._token_id = ""
        self._guarded = 0.0  # monotonic time of the last check of lock, cooldown and pause before a call

    # -- entry point ---------------------------------------------------------------------------------------

    async def run(self) -> str:
        if not self.lock.acquire():
            self.redis.zadd(keys.READY, {self.lane: time.time() + BUSY_RECHECK}, lt=True)
            return "busy"
        not_before = 0.0
        try:
            outcome = await self._rounds()
        except Stop as stop:
            if stop.outcome == "lost-lock":
                return stop.outcome
            outcome, not_before = stop.outcome, stop.at
        except BaseException:
            # Whatever broke, the lane must not wait a lock TTL and a lease to be looked at again.
            with contextlib.suppress(Exception):
                self._finish(time.time() + BUSY_RECHECK)
            raise
        self._finish(not_before)
        return outcome

    async def _rounds(self) -> str:
        destination = self._open()
        deadline = time.monotonic() + self.settings.drain_budget
        resolver: Resolver | ShadowResolver = Resolver(self.ctx, self.lane, self._token, self._token_id,
                                                       self._call_slot)
        if destination.mode == "shadow":  # no TikTok call at all: worker.shadow
            resolver = ShadowResolver(self.ctx, self.lane)
        # TikTok calls a round may spend finding audience ids: while mapping work is ready, all but one slot of
        # a second (so creates and checks interleave with mapping calls); otherwise what the drain's budget
        # holds (a task must end well within Celery's time limit).
        resolve_quota = max(1, int(self.settings.rate_limit_qps) - 1)
        idle_quota = max(resolve_quota, int(self.settings.rate_limit_qps * self.settings.drain_budget))
        # A stopping worker (worker.shutdown) cuts no new round; what is in flight finishes or is handed back.
        while time.monotonic() < deadline and not shutdown.requested():
            pipe = self.redis.pipeline(transaction=False)
            self.lock.stage_extend(pipe)  # a drain that lost its lock must not cut (or overwrite) a plan
            pipe.lrange(keys.lane_replay(self.lane), 0, 0)
            pipe.get(keys.lane_plan(self.lane))
            pipe.exists(keys.INTAKE_RECENT)
            pipe.get(keys.paused(destination.id))
            extended, replay, raw_plan, intake_busy, paused = pipe.execute()
            if not extended:
                raise Stop("lost-lock")
            if paused:
                raise Stop("paused", time.time() + self.settings.pause_recheck)
            if replay:
                await replay_one(self, resolver, replay[0].decode())
                continue
            if raw_plan:
                await self._run_plan(LanePlan.loads(raw_plan))
                continue
            quiet = self.settings.quiet_flush > 0 and not intake_busy
            horizon = time.time() + (self.settings.flush_interval if quiet else 0.0)
            targets = (due_targets(self.redis, self.lane, horizon, DUE_AT_ONCE)
                       or filling_targets(self.redis, self.lane, self.settings.batch_size, DUE_AT_ONCE))
            if not targets:
                break
            found = await resolver.resolve(targets, resolve_quota, idle_quota)
            ready = [t for t in targets if t in found.audience_of or t in found.refused]
            chunks = read_chunks(self.redis, ready, self.settings.batch_size * REQUESTS_PER_ROUND) if ready else []
            if not chunks:
                if found.creates or found.checks:
                    continue  # resolving took the round's calls; what it resolved goes next round
                break
            cut = cut_plan(self.ctx, self.lane, chunks, found.audience_of, found.refused)
            await self._run_plan(cut.plan, {r.id: (r, w) for r, w in cut.work})
        if self.delivered:
            return "drained"
        return "waiting" if self.redis.zcard(keys.lane_due(self.lane)) else "idle"

    def _open(self) -> Destination:
        destination = self.ctx.destinations.get(self.lane)
        if destination is None:
            log.warning("destination_not_configured", lane=self.lane)
            raise Stop("unconfigured", time.time() + self.settings.pause_recheck)
        try:
            self._token = destination.access_token()
        except ConfigError as exc:
            pause.pause(self.redis, destination.id, reason=str(exc), code=None)
            log.error("destination_paused", destination=destination.id, reason=str(exc))
            raise Stop("paused", time.time() + self.settings.pause_recheck) from None
        self._token_id = destination.token_id()
        self._destination = destination
        return destination

    def _finish(self, not_before: float) -> None:
        """Leave the lane in the ready index exactly when it has work, due when it should run, and release the
        lock: one script call (lane_finish.lua)."""
        self.redis.eval(_FINISH, 5, keys.READY, self.lock.key, keys.lane_due(self.lane),
                        keys.lane_plan(self.lane), keys.lane_replay(self.lane), self.lane, self.lock.token,
                        time.time(), not_before)

    # -- rate-limit slots ------------------------------------------------------------------------------------

    async def _call_slot(self, strict: bool = False) -> None:
        """Wait for a rate-limit slot of the lane's token, then check in one round trip that the lane still
        may call: the lock is renewed, no throttle began and the destination was not paused meanwhile."""
        slept = False
        while True:
            granted, wait = self.ctx.limiter.reserve(self._token_id, RESERVE_AHEAD)
            if granted:
                if wait > 0:
                    due = time.monotonic() + wait
                    await asyncio.sleep(wait)
                    slept = True
                    if time.monotonic() - due > LATE_SLOT:
                        continue  # held up past its slot: sent now, it could reach TikTok with the next slots' calls
                break
            if wait > WAIT_IN_PLACE:
                raise Stop("rate-limited", time.time() + wait)
            await asyncio.sleep(max(0.0, wait - RESERVE_AHEAD / 2))
            slept = True
        # A slot granted at once was granted outside any cooldown (the limiter refuses through one); for creates
        # and checks the other looks need not run more often than GUARD_EVERY when calls come that fast.
        # ``strict`` (mapping calls) always looks.
        if not strict and not slept and time.monotonic() - self._guarded < GUARD_EVERY:
            self.calls += 1
            return
        assert self._destination is not None
        pipe = self.redis.pipeline(transaction=False)
        self.lock.stage_extend(pipe)
        pipe.pttl(keys.cooldown(self._token_id))
        pipe.get(keys.paused(self._destination.id))
        extended, cooldown_ms, paused = pipe.execute()
        if not extended:
            raise Stop("lost-lock")
        if paused:
            raise Stop("paused", time.time() + self.settings.pause_recheck)
        if int(cooldown_ms) > 0:
            raise Stop("throttled", time.time() + int(cooldown_ms) / 1000)
        self._guarded = time.monotonic()
        self.calls += 1

    # -- plans -----------------------------------------------------------------------------------------------

    async def _run_plan(self, plan: LanePlan,
                        cut: dict[str, tuple[BatchRecord, Work]] | None = None) -> None:
        """Send the plan's open batches phase by phase, then acknowledge the plan (trim the streams). The
        batches of one phase commute (worker.lane_plan), so they go concurrently, each in its own rate-limit
        slot; the next phase waits for the last."""
        queue = list(plan.batch_ids)
        known = dict(cut or {})
        while queue:
            group: list[tuple[BatchRecord, Work]] = []
            while queue:
                item = known.get(queue[0]) or self._load(queue[0])
                if item is None:
                    queue.pop(0)
                    continue
                known[queue[0]] = item
                if group and item[0].phase != group[0][0].phase:
                    break
                queue.pop(0)
                if item[0].status not in FINISHED_STATUSES:
                    group.append(item)
            if not group:
                continue
            results = await asyncio.gather(*(self.send(r, w, plan=plan) for r, w in group),
                                           return_exceptions=True)
            stop: Stop | None = None
            for result in results:
                if isinstance(result, Stop):
                    stop = stop or result
                elif isinstance(result, BaseException):
                    raise result
                elif result:  # a refused batch split in two: its halves go next, in its phase
                    queue[:0] = [half.id for half, _ in result]
                    known.update({half.id: (half, work) for half, work in result})
            if stop is not None:
                raise stop
        self._acknowledge(plan)

    def _load(self, batch_id: str) -> tuple[BatchRecord, Work] | None:
        record = self.ctx.ledger.get(batch_id)
        payload = self.ctx.ledger.payload(batch_id) if record is not None else None
        if record is None or (payload is None and record.status not in FINISHED_STATUSES):
            log.error("batch_payload_missing", batch=batch_id, lane=self.lane)
            return None
        return record, decode_payload(payload, record.target) if payload else {}

    def _acknowledge(self, plan: LanePlan) -> None:
        """Trim each target's stream past what the plan consumed, lower the counts, reset each target's due
        time from what is left, drop the plan: one script call, fenced by the lock (lane_ack.lua)."""
        script_keys: list[str | bytes] = [self.lock.key, keys.lane_plan(self.lane), keys.BACKLOG,
                                          keys.lane_due(self.lane)]
        per_target: list[str] = []
        for target, (position, operations) in plan.targets.items():
            own = keys.target_keys(target)
            script_keys += (own.stream, own.pending)
            per_target.append(f"{target} {_next_id(position) if position else '0-1'} {operations}")
        args: list[Any] = [self.lock.token, time.time(), self.settings.batch_size, self.settings.flush_interval,
                           " ".join(per_target)]
        if int(self.redis.eval(_ACK, len(script_keys), *script_keys, *args)) < 0:
            raise Stop("lost-lock")

    # -- sending ---------------------------------------------------------------------------------------------

    async def send(self, record: BatchRecord, work: Work, *, plan: LanePlan | None = None,
                   replay_queue: str | None = None) -> list[tuple[BatchRecord, Work]]:
        """Send one batch; returns when it is delivered or dead (nothing), or split (its two halves, already
        recorded in its place: in ``plan`` or at the head of ``replay_queue``). Raises Stop when the lane must
        wait."""
        now = time.time()
        if record.next_attempt_at and record.next_attempt_at > now:
            raise Stop("backoff", record.next_attempt_at)
        if self._destination is not None and self._destination.mode == "shadow":
            record_shadow(self.ctx, record)  # recorded as it would be sent, instead of sent: worker.shadow
            self.delivered += 1
            return []
        rows = wire_rows(work, record.targets)  # built before the slot: the call leaves as soon after it as it can
        await self._call_slot(strict=True)
        now = time.time()
        self.ctx.ledger.update(record, status="delivering", attempts=record.attempts + 1,
                               first_attempt_at=record.first_attempt_at or now, next_attempt_at=None)
        try:
            response = await self.ctx.client.send_rows(
                self._token, record.advertiser_ids or [record.advertiser_id], cast(Action, record.action), rows)
        except TikTokError as exc:
            return self._failed(record, work, exc, plan, replay_queue)
        pipe = self.redis.pipeline(transaction=True)
        self.ctx.membership.stage_record_many(
            pipe, [(target, record.action, record.position_of(target), ops) for target, ops in work.items()])
        confirmed = stage_confirmations(pipe, self.ctx, self.lane, {t: record.targets.get(t, "") for t in work})
        self.ctx.ledger.stage_update(pipe, record, status="delivered", last_code=response.code,
                                     last_message=response.message, last_request_id=response.request_id,
                                     finished_at=time.time())
        pipe.execute()
        self.ctx.audience_ids.update(confirmed)
        self.delivered += 1
        return []

    def _failed(self, record: BatchRecord, work: Work, exc: TikTokError, plan: LanePlan | None,
                replay_queue: str | None) -> list[tuple[BatchRecord, Work]]:
        now = time.time()
        decision = decide(exc, record, self.settings, now, audiences=len(work), jitter=random.random())
        said: dict[str, Any] = {"last_code": exc.code if exc.code is not None else exc.http_status,
                                "last_message": exc.message, "last_request_id": exc.request_id or ""}
        if decision.verdict == "split":
            return split_batch(self.ctx, self.lane, record, work, exc, plan, replay_queue)
        if decision.verdict == "dead":
            if isinstance(exc, PermanentError) and any(t not in self.ctx.audience_ids for t in work):
                note_foreign_refusal(self.redis, self.lane)  # an unconfirmed audience refused: likely foreign
            self.ctx.ledger.update(record, status="dead", finished_at=now, **said, **decision.history)
            log.error("batch_dead", batch=record.id, lane=self.lane, audiences=list(record.audiences),
                      code=exc.code, message=exc.message, request_id=exc.request_id)
            return []
        if decision.verdict == "throttled":
            self.ctx.limiter.throttle(self._token_id, decision.cooldown)
        elif decision.verdict == "pause":
            assert self._destination is not None
            pause.pause(self.redis, self._destination.id, reason=exc.message, code=exc.code)
            log.error("destination_paused", destination=self._destination.id, code=exc.code,
                      message=exc.message)
        next_attempt = decision.retry_at if decision.verdict == "retry" else None
        self.ctx.ledger.update(record, status=decision.status, next_attempt_at=next_attempt, **said,
                               **decision.history)
        outcome = {"retry": "transient", "pause": "paused"}.get(decision.verdict, decision.verdict)
        raise Stop(outcome, decision.retry_at or now)


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq) + 1}"


# What a drain that Redis refused for lack of memory reports (core.redis_memory).
OUT_OF_MEMORY = "out_of_memory"


async def drain_lanes(ctx: WorkerContext, lanes: list[str]) -> list[str]:
    """Drain several lanes concurrently (each holds its own lock); returns each one's outcome. A drain that
    fails is logged and reported as "error": its lane stays in the ready index (the scheduler's lease brings
    it back), and the other lanes are drained all the same."""

    async def one(lane: str) -> str:
        if shutdown.requested():  # a stopping worker starts no new lane
            shutdown.hand_back(ctx.redis, [lane])
            return shutdown.HANDED_BACK
        try:
            return await LaneDrain(ctx, lane).run()
        except Exception as exc:
            if is_out_of_memory(exc):  # a condition, logged once per episode by the task (worker.tasks)
                return OUT_OF_MEMORY
            log.error("drain_failed", lane=lane, error=f"{type(exc).__name__}: {exc}", exc_info=True)
            return "error"

    return list(await asyncio.gather(*(one(lane) for lane in lanes)))
