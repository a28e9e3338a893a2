"""The TikTok audience id each of a lane's due targets goes to, found with as few TikTok calls as possible.

- A target naming an audience id (from an event or a mapping) must belong to its advertiser. It is confirmed
  once, and the confirmation cached in Redis (per destination, advertiser and audience id) and in the worker
  process. An id never confirmed goes straight into mapping requests: TikTok refuses a whole mapping request
  naming an audience none of its advertisers owns, so a request it accepts proves every audience in it belongs
  to one of them, and the lane records that as the confirmation (:func:`stage_confirmations`). A request it
  refuses that mixes audiences is bisected by audience (worker.lane), so only the foreign audience goes dead,
  with TikTok's code, message and request id. No look-up is then on the way of a first delivery.
- A foreign id costs a bisection of a mapping request (about two calls per halving). So that a workspace that
  names many foreign ids does not pay one per id, a lane that has seen an audience refused as foreign (by a
  mapping call or a look-up) is marked for :data:`CHECK_FIRST_FOR` (:func:`note_foreign_refusal`; each refusal
  renews the mark): meanwhile it looks its unconfirmed ids up first with ``/dmp/custom_audience/get/``, 100 per
  call. TikTok fails the whole look-up when one id is not the advertiser's, so a refused call of several ids is
  bisected until the foreign ones are found; they are refused (their operations go dead with the reason), the
  others confirmed.
- A target of an Engage audience still to be created (``@<key>``) is created once, through
  worker.audiences.create_once (crash-safe); the lane holds its lock, so no other worker creates it at the
  same time. Each create takes a rate-limit slot; a round makes at most a quota of them, so mapping calls
  for audiences that already exist are not held up behind hundreds of creates.

Failures follow worker.policy: a throttle rests the token and stops the drain, an auth answer pauses the
destination, a transient failure backs the target off (its due time moves, the others go on) until the retry
window ends, then its operations go dead like a permanent refusal.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
import structlog

from worker import keys, pause
from worker.audiences import OwnershipError, confirm_audiences, create_once, details_of, remember_audience
from worker.context import WorkerContext
from worker.keys import Target
from worker.policy import Stop, decide
from worker.tiktok.errors import PermanentError, TikTokError

log = structlog.get_logger(__name__)

GET_IDS_PER_CALL = 100
CONCURRENT_CALLS = 16
# How long a lane that saw an audience refused as foreign looks its unconfirmed audience ids up before sending
# to them. Foreign ids come in bulk (ids copied from another advertiser's account, a mapping pointed at the
# wrong advertiser), and while they keep coming each refusal renews the mark; an hour without one lets the
# lane go back to confirming by delivery, where a workspace whose ids are all its own pays no look-up.
CHECK_FIRST_FOR = 3600


@dataclass(slots=True)
class Resolution:
    audience_of: dict[str, str] = field(default_factory=dict)  # targets ready to send to
    refused: dict[str, TikTokError] = field(default_factory=dict)  # targets whose operations go dead
    creates: int = 0  # TikTok creates made
    checks: int = 0  # ownership calls made
    unconfirmed: set[str] = field(default_factory=set)  # ready targets whose ownership a delivery will confirm


class Resolver:
    def __init__(self, ctx: WorkerContext, lane: str, token: str, token_id: str,
                 slot: Callable[[], Awaitable[None]]) -> None:
        self.ctx = ctx
        self.lane = lane
        self.token = token
        self.token_id = token_id
        self._slot = slot  # waits for a rate-limit slot of the token and checks the lane still may call

    async def resolve(self, targets: list[str], quota: int, idle_quota: int | None = None) -> Resolution:
        """Audience ids of ``targets``, making at most ``quota`` TikTok calls (``idle_quota`` when none of them
        is ready to send yet: then no mapping call waits behind the creates and checks)."""
        found = Resolution()
        cache = self.ctx.audience_ids
        unknown = [t for t in targets if t not in cache]
        found.audience_of.update({t: cache[t] for t in targets if t in cache})
        if not unknown:
            return found
        looks = [_look_of(t) for t in unknown]
        # One command per kind of look, not one per audience (a lane may bring thousands at once): the created
        # audience's id, or the mark of a confirmed ownership.
        pipe = self.ctx.redis.pipeline(transaction=False)
        pipe.mget([key for _, key in looks])
        pipe.hlen(keys.resolve_failures(self.lane))
        pipe.exists(keys.lane_check_first(self.lane))
        answers, failing, check_first = pipe.execute()
        # The lane's failing creates and checks, looked up only when it has any (nearly never): not a field per
        # audience of the round in every round.
        failures = (self.ctx.redis.hmget(keys.resolve_failures(self.lane), unknown) if failing
                    else [None] * len(unknown))
        now = time.time()
        to_create: list[str] = []
        to_check: dict[str, list[str]] = defaultdict(list)
        for target, (spec, _), answer, failure in zip(unknown, looks, answers, failures, strict=True):
            if answer:
                audience_id = spec.audience
                if spec.needs_audience:
                    audience_id = answer.decode() if isinstance(answer, bytes) else str(answer)
                cache[target] = found.audience_of[target] = audience_id
                continue
            if failure and orjson.loads(failure).get("next_at", 0) > now:
                continue  # backing off: its due time already says when to look again
            if spec.needs_audience:
                to_create.append(target)
            elif check_first:
                to_check[spec.advertiser_id].append(target)
            else:  # confirmed by its first delivery (not cached until then)
                found.audience_of[target] = spec.audience
                found.unconfirmed.add(target)
        if not found.audience_of and idle_quota is not None:
            quota = idle_quota
        calls = [functools.partial(self._check, advertiser_id, checks[start : start + GET_IDS_PER_CALL], found)
                 for advertiser_id, checks in to_check.items()
                 for start in range(0, len(checks), GET_IDS_PER_CALL)]
        calls += [functools.partial(self._create, target, found) for target in to_create]
        await _run_all([call() for call in calls[: max(1, quota)]])
        return found

    async def _check(self, advertiser_id: str, targets: list[str], found: Resolution) -> None:
        ids = [Target.parse(t).audience for t in targets]
        await self._slot()
        found.checks += 1
        try:
            items = await self.ctx.client.get_audiences(self.token, advertiser_id, ids)
        except PermanentError as exc:
            if len(targets) > 1:  # one foreign id fails the whole call: find it by halves
                middle = len(targets) // 2
                await self._check(advertiser_id, targets[:middle], found)
                await self._check(advertiser_id, targets[middle:], found)
                return
            found.refused[targets[0]] = _not_owned(advertiser_id, ids[0], exc)
            note_foreign_refusal(self.ctx.redis, self.lane)
            return
        except TikTokError as exc:
            for target in targets:
                self._failed(target, exc, found)
            return
        pipe = self.ctx.redis.pipeline(transaction=True)
        for target, audience_id in zip(targets, ids, strict=True):
            details = details_of(items, audience_id)
            if details is None:
                found.refused[target] = _not_owned(advertiser_id, audience_id, None)
                note_foreign_refusal(pipe, self.lane)
                continue
            pipe.set(keys.ownership(self.lane, advertiser_id, audience_id), 1)
            remember_audience(pipe, self.lane, advertiser_id, audience_id, name=str(details.get("name") or ""),
                              origin="checked", only_new=True)
            self.ctx.audience_ids[target] = found.audience_of[target] = audience_id
        pipe.hdel(keys.resolve_failures(self.lane), *targets)
        pipe.execute()

    async def _create(self, target: str, found: Resolution) -> None:
        spec = Target.parse(target)
        id_key = keys.created_audience(spec.destination, spec.advertiser_id, spec.audience_key)
        await self._slot()
        found.creates += 1
        try:
            audience_id = await create_once(self.ctx.client, self.ctx.redis, self.token,
                                            destination=spec.destination, advertiser_id=spec.advertiser_id,
                                            name=spec.audience_key, id_key=id_key, origin="auto-create",
                                            target=target)
        except TikTokError as exc:
            log.error("audience_create_failed", destination=spec.destination, advertiser_id=spec.advertiser_id,
                      audience_key=spec.audience_key, error=type(exc).__name__, code=exc.code,
                      message=exc.message, request_id=exc.request_id)
            self._failed(target, exc, found)
            return
        self.ctx.redis.hdel(keys.resolve_failures(self.lane), target)
        self.ctx.audience_ids[target] = found.audience_of[target] = audience_id

    def _failed(self, target: str, exc: TikTokError, found: Resolution) -> None:
        """Apply the retry policy to a failed create or check of ``target``'s audience."""
        redis = self.ctx.redis
        raw = redis.hget(keys.resolve_failures(self.lane), target)
        history = orjson.loads(raw) if raw else {}
        now = time.time()
        decision = decide(exc, SimpleNamespace(failures=history.get("failures", 0),
                                               failing_since=history.get("failing_since")),
                          self.ctx.settings, now, jitter=random.random())
        if decision.verdict == "throttled":
            self.ctx.limiter.throttle(self.token_id, decision.cooldown)
            raise Stop("throttled", decision.retry_at or now)
        if decision.verdict == "pause":
            pause.pause(redis, self.lane, reason=exc.message, code=exc.code)
            log.error("destination_paused", destination=self.lane, code=exc.code, message=exc.message)
            raise Stop("paused", decision.retry_at or now)
        if decision.verdict == "retry":
            assert decision.retry_at is not None
            pipe = redis.pipeline(transaction=True)
            pipe.hset(keys.resolve_failures(self.lane), target,
                      orjson.dumps({**decision.history, "next_at": decision.retry_at}))
            pipe.zadd(keys.lane_due(self.lane), {target: decision.retry_at}, xx=True)
            pipe.execute()
            return
        redis.hdel(keys.resolve_failures(self.lane), target)
        found.refused[target] = exc


@functools.lru_cache(maxsize=1 << 16)  # a lane brings thousands of audiences a round, the same ones again
def _look_of(target: str) -> tuple[Target, str]:
    """``target`` parsed, and the key that says its audience id is known: the created audience's id for an
    Engage audience still to be created, else the mark of its confirmed ownership."""
    spec = Target.parse(target)
    if spec.needs_audience:
        return spec, keys.created_audience(spec.destination, spec.advertiser_id, spec.audience_key)
    return spec, keys.ownership(spec.destination, spec.advertiser_id, spec.audience)


def stage_confirmations(pipe: Any, ctx: WorkerContext, lane: str, audience_of: dict[str, str]) -> dict[str, str]:
    """Stage on ``pipe`` (the transaction recording a delivery) the ownership confirmation of the audiences of
    ``audience_of`` (target -> audience id) that this process has not seen confirmed: TikTok accepted a mapping
    request naming them, which it does only when each belongs to one of the request's advertisers. Returns
    them, for the caller to add to ``ctx.audience_ids`` once the transaction went through."""
    cache = ctx.audience_ids
    new = {target: audience_id for target, audience_id in audience_of.items()
           if audience_id and target not in cache}
    confirm_audiences(pipe, lane, [(target.split("|", 2)[1], audience_id) for target, audience_id in new.items()],
                      origin="delivered")
    return new


def note_foreign_refusal(redis: Any, lane: str) -> None:
    """Mark the lane to look its unconfirmed audiences up first for :data:`CHECK_FIRST_FOR` seconds (renewed)."""
    redis.set(keys.lane_check_first(lane), 1, ex=CHECK_FIRST_FOR)


async def _run_all(calls: list[Coroutine[Any, Any, None]]) -> None:
    """Run the calls, up to :data:`CONCURRENT_CALLS` at once (each waits for its own rate-limit slot, so at a
    generous rate the round is not as long as the sum of the calls' latencies). The first Stop cancels the
    others (a create cancelled mid-call leaves its intent marker: worker.audiences makes its retry safe)."""
    if len(calls) == 1:
        await calls[0]
        return
    gate = asyncio.Semaphore(CONCURRENT_CALLS)

    async def limited(call: Coroutine[Any, Any, None]) -> None:
        async with gate:
            await call

    try:
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(limited(call))
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None


def _not_owned(advertiser_id: str, audience_id: str, exc: TikTokError | None) -> OwnershipError:
    where = f"audience {audience_id} does not belong to advertiser {advertiser_id}"
    advice = "its batches are not sent; correct the audience id in the event or mapping, then replay them"
    said = f"TikTok /dmp/custom_audience/get/: {exc.message}" if exc else \
        "TikTok /dmp/custom_audience/get/ does not return it"
    return OwnershipError(f"{where} ({said}); {advice}", code=exc.code if exc else None,
                          request_id=exc.request_id if exc else "", http_status=exc.http_status if exc else None)
