"""Legacy ``createAudience`` requests: the consumer of the ``tta:creates`` stream the producer writes.

Each entry (its format: :mod:`worker.creates_stream`) asks for one TikTok audience. The consumer creates each
audience once per (destination, advertiser, TikTok name): the id is stored under
:func:`worker.keys.legacy_created`, so a replayed or duplicated event finds it and creates nothing. An entry is
removed from the stream only after its outcome is recorded (the id, or the failure), so a crash at any point
repeats the work instead of losing it, and :func:`worker.audiences.create_once` makes that repeat safe.

One consumer runs at a time across the fleet (a lock), started by any worker's scheduler when the stream has
entries (:func:`creates_due`) as the Celery task ``tta.create_audiences``. Failures follow the delivery rules:
throttled and transient answers leave the entry and retry later (transient ones with backoff, within the retry
window, counted from the request's acceptance), an auth answer pauses the destination, and anything else is a
permanent failure, recorded in :data:`worker.keys.CREATE_FAILURES` for ``audiences list``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
import redis
import structlog

from core.destinations import ConfigError
from worker import keys, pause
from worker.audiences import create_once
from worker.context import WorkerContext
from worker.creates_stream import decode_create
from worker.policy import decide
from worker.target_lock import TargetLock
from worker.tiktok.errors import TikTokError, TransientError
from worker.tiktok.wire import truncate_audience_name

log = structlog.get_logger(__name__)

CONSUMER_LOCK = keys.CREATES_LOCK
READ_AT_ONCE = 100
DISPATCH_LEASE_MS = 1000


@dataclass(frozen=True, slots=True)
class CreateRequest:
    destination: str
    advertiser_id: str
    name: str  # cut to TikTok's 70 characters: the name the audience gets, and what dedupes requests

    @property
    def label(self) -> str:
        return f"{self.destination}|{self.advertiser_id}|{self.name}"

    @classmethod
    def from_entry(cls, fields: Mapping[Any, Any] | None) -> CreateRequest | None:
        """The request a stream entry holds, its name cut to TikTok's length; None when it is unreadable."""
        decoded = decode_create(fields)
        if decoded is None:
            return None
        return cls(decoded.destination, decoded.advertiser_id, truncate_audience_name(decoded.name))


@dataclass(slots=True)
class Outcome:
    created: int = 0
    duplicates: int = 0
    failed: int = 0
    waiting: int = 0  # left in the stream for later (paused destination, retry, rate limit)
    busy: bool = False  # another consumer holds the lock
    audience_ids: list[str] = field(default_factory=list)


def creates_due(client: redis.Redis, now: float | None = None) -> bool:
    """Whether the consumer should be dispatched now; True for one caller per lease across the fleet."""
    if not client.xlen(keys.CREATES):
        return False
    retry_at = client.get(keys.CREATES_RETRY_AT)
    now = time.time() if now is None else now
    if retry_at and float(retry_at) > now:
        return False
    return bool(client.set(keys.CREATES_DISPATCH, 1, nx=True, px=DISPATCH_LEASE_MS))


async def process_creates(ctx: WorkerContext) -> Outcome:
    """Work through the stream once; see the module docstring for what happens to each request."""
    outcome = Outcome()
    lock = TargetLock(ctx.redis, CONSUMER_LOCK, ctx.settings.http_timeout * 2 + 15.0)
    if not lock.acquire():
        outcome.busy = True
        return outcome
    try:
        await _consume(ctx, lock, outcome)
    finally:
        lock.release()
    return outcome


async def _consume(ctx: WorkerContext, lock: TargetLock, outcome: Outcome) -> None:
    client = ctx.redis
    for raw_id, fields in client.xrange(keys.CREATES, count=READ_AT_ONCE) or []:
        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        if not lock.extend():
            return
        request = CreateRequest.from_entry(fields)
        if request is None:
            log.error("create_request_unreadable", entry=entry_id)
            _done(client, entry_id)
            continue
        retry_at = await _handle(ctx, request, entry_id, outcome)
        if retry_at is not None:
            # Throttled or failing: stop here (the next entries most likely use the same token).
            client.set(keys.CREATES_RETRY_AT, retry_at)
            outcome.waiting += 1
            return
    if outcome.waiting:
        # Only entries of paused destinations are left: look again when a resume may have happened.
        client.set(keys.CREATES_RETRY_AT, time.time() + ctx.settings.pause_recheck)


async def _handle(ctx: WorkerContext, request: CreateRequest, entry_id: str,
                  outcome: Outcome) -> float | None:
    """Create one requested audience. Returns a time to retry at, or None when the entry is settled/left."""
    client = ctx.redis
    id_key = keys.legacy_created(request.destination, request.advertiser_id, request.name)
    if client.exists(id_key):
        outcome.duplicates += 1
        _done(client, entry_id)
        return None
    destination = ctx.destinations.get(request.destination)
    if destination is None:
        _fail(client, request, "failed", f"destination {request.destination!r} is not configured")
        outcome.failed += 1
        _done(client, entry_id)
        return None
    if pause.pause_info(client, destination.id):
        outcome.waiting += 1
        return None
    try:
        token = destination.access_token()
    except ConfigError as exc:
        pause.pause(client, destination.id, reason=str(exc), code=None)
        outcome.waiting += 1
        return None
    token_id = destination.token_id()
    wait = ctx.limiter.acquire(token_id)
    if wait > 0:
        return time.time() + wait
    try:
        audience_id = await create_once(ctx.client, client, token, destination=request.destination,
                                        advertiser_id=request.advertiser_id, name=request.name, id_key=id_key,
                                        origin="legacy-create")
    except TikTokError as exc:
        return _decide(ctx, request, entry_id, exc, outcome, destination.id, token_id)
    client.hdel(keys.CREATE_FAILURES, request.label)
    _done(client, entry_id)
    outcome.created += 1
    outcome.audience_ids.append(audience_id)
    return None


def _decide(ctx: WorkerContext, request: CreateRequest, entry_id: str, exc: TikTokError, outcome: Outcome,
            destination_id: str, token_id: str) -> float | None:
    """The retry policy (worker.policy) applied to a failed create: the window counts from the request's
    acceptance, the backoff from its attempts so far."""
    client = ctx.redis
    now = time.time()
    attempts = int(client.hget(keys.CREATE_ATTEMPTS, entry_id) or 0)
    history = SimpleNamespace(failures=attempts, failing_since=int(entry_id.split("-", 1)[0]) / 1000.0)
    decision = decide(exc, history, ctx.settings, now, jitter=random.random())
    if decision.verdict == "throttled":
        ctx.limiter.throttle(token_id, decision.cooldown)
        return decision.retry_at
    if decision.verdict == "retry":
        client.hincrby(keys.CREATE_ATTEMPTS, entry_id, 1)
        _fail(client, request, "retrying", str(exc), exc)
        return decision.retry_at
    if decision.verdict == "pause":
        pause.pause(client, destination_id, reason=exc.message, code=exc.code)
        log.error("destination_paused", destination=destination_id, code=exc.code, message=exc.message)
        _fail(client, request, "paused", str(exc), exc)
        outcome.waiting += 1
        return None
    window = "retry window exhausted: " if isinstance(exc, TransientError) else ""
    _fail(client, request, "failed", f"{window}{exc}", exc)  # permanent: TikTok refused this request itself
    outcome.failed += 1
    _done(client, entry_id)
    return None


def _done(client: redis.Redis, entry_id: str) -> None:
    """Remove a settled entry (its outcome is already recorded) and its attempt count."""
    pipe = client.pipeline(transaction=True)
    pipe.xdel(keys.CREATES, entry_id)
    pipe.hdel(keys.CREATE_ATTEMPTS, entry_id)
    pipe.execute()


def _fail(client: redis.Redis, request: CreateRequest, status: str, message: str,
          exc: TikTokError | None = None) -> None:
    record: dict[str, Any] = {
        "destination": request.destination, "advertiser_id": request.advertiser_id, "name": request.name,
        "status": status, "message": message, "code": exc.code if exc else None,
        "request_id": exc.request_id if exc else "", "at": time.time(),
    }
    client.hset(keys.CREATE_FAILURES, request.label, orjson.dumps(record))
    log.error("audience_create_failed", destination=request.destination, advertiser_id=request.advertiser_id,
              name=request.name, status=status, code=record["code"], message=message)
