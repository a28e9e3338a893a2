"""TikTok audiences the service creates and knows about.

Native auto-create (behaviour.md §6): operations for an Engage audience that has no TikTok id yet are queued
under the target ``dest|advertiser|@<audience key>``. Only the holder of that target's lock drains it, so the
lock that keeps delivery in order is also the lock that makes creation happen once, whatever the number of
workers; the id is remembered in Redis and used for every later batch.
"""

from __future__ import annotations

import time

import orjson
import structlog

from worker import keys
from worker.context import WorkerContext
from worker.destinations import Destination
from worker.keys import Target

log = structlog.get_logger(__name__)


def remember_audience(ctx: WorkerContext, destination: str, advertiser_id: str, audience_id: str, *,
                      name: str, origin: str) -> None:
    ctx.redis.hset(keys.AUDIENCES, f"{destination}|{advertiser_id}|{audience_id}", orjson.dumps({
        "destination": destination, "advertiser_id": advertiser_id, "audience_id": audience_id,
        "name": name, "origin": origin, "created_at": time.time(),
    }))


async def audience_for(ctx: WorkerContext, destination: Destination, token: str, target: Target) -> str:
    """The TikTok audience id a target's batches go to (called by the drainer, which holds the target's lock)."""
    if not target.needs_audience:
        return target.audience
    return await resolve_native_audience(ctx, destination, token, target)


async def resolve_native_audience(ctx: WorkerContext, destination: Destination, token: str,
                                  target: Target) -> str:
    """The TikTok id of a target's Engage audience, creating the audience the first time."""
    key = keys.created_audience(target.destination, target.advertiser_id, target.audience_key)
    known = ctx.redis.get(key)
    if known:
        return known.decode()  # type: ignore[union-attr]
    audience_id = await ctx.client.create_audience(token, target.advertiser_id, target.audience_key)
    ctx.redis.set(key, audience_id)
    remember_audience(ctx, target.destination, target.advertiser_id, audience_id, name=target.audience_key,
                      origin="auto-create")
    log.info("audience_created", destination=target.destination, advertiser_id=target.advertiser_id,
             audience_key=target.audience_key, audience_id=audience_id)
    return audience_id
