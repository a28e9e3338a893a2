"""TikTok audiences the service creates and checks before it sends to them.

Native auto-create: operations for an Engage audience that has no TikTok id yet are queued
under the target ``dest|advertiser|@<audience key>``. Only the holder of that target's lane lock drains it
(worker.lane), so the lock that keeps delivery in order is also the lock that makes creation happen once
whatever the number of workers. Events that arrive meanwhile simply queue behind it. The id is remembered in
Redis and used for every later batch.

Crash safety. Between TikTok creating an audience and Redis storing its id lies a window: a worker killed in
it, or a create whose answer was lost to a timeout, leaves an audience in TikTok that Redis does not know.
So :func:`create_once` writes an *intent* marker before it calls TikTok and removes it in the same
transaction that stores the id. An attempt that finds the marker already set knows an earlier one may have
succeeded: it first looks through the advertiser's audiences (``/dmp/custom_audience/list/``) for one with
exactly the name it is about to give, and adopts it instead of creating a second. Searching only when the
marker says an attempt was interrupted (rather than before every create) keeps the normal path to one call and
keeps the service from adopting an unrelated audience that merely shares the name.

Ownership: an audience id that came from an event or a mapping must belong to the advertiser. The first
mapping request TikTok accepts with it confirms it (TikTok refuses a request naming an audience none of its
advertisers owns; a refused request of several audiences is bisected so only the foreign one dies); a lane that
has lately seen a foreign id looks unconfirmed ids up first through ``/dmp/custom_audience/get/``, 100 per call
(worker.lane_resolve). Either confirmation is cached per (destination, advertiser, audience id). A refused
look-up is an :class:`OwnershipError`, a :class:`PermanentError`: the lane records the target's operations dead
with that reason and never sends them.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import orjson
import redis
import structlog

from worker import keys, lua
from worker.tiktok.errors import PermanentError
from worker.tiktok.wire import truncate_audience_name

log = structlog.get_logger(__name__)

_LIST_PAGE_SIZE = 100
# A crash reconcile reads at most this many pages (5,000 audiences); past them it stops looking and creates.
_LIST_MAX_PAGES = 50


class AudienceApi(Protocol):
    """The part of :class:`~worker.tiktok.client.TikTokClient` this module uses."""

    async def create_audience(self, token: str, advertiser_id: str, name: str) -> str: ...

    async def get_audiences(self, token: str, advertiser_id: str,
                            audience_ids: list[str]) -> list[dict[str, Any]]: ...

    async def list_audiences(self, token: str, advertiser_id: str, page: int = 1,
                             page_size: int = 100) -> dict[str, Any]: ...


class OwnershipError(PermanentError):
    """The audience is not the advertiser's: its batches are dead, never sent."""


def audience_entry(destination: str, advertiser_id: str, audience_id: str) -> str:
    """Field of :data:`worker.keys.AUDIENCES` for one audience."""
    return f"{destination}|{advertiser_id}|{audience_id}"


def remember_audience(client: redis.Redis, destination: str, advertiser_id: str, audience_id: str, *,
                      name: str, origin: str, target: str | None = None, only_new: bool = False) -> None:
    """Record an audience for ``audiences list``. ``client`` may be a pipeline. ``only_new`` keeps an existing
    record (an audience we created stays "created" when a later ownership check sees it)."""
    field = audience_entry(destination, advertiser_id, audience_id)
    value = orjson.dumps({
        "destination": destination, "advertiser_id": advertiser_id, "audience_id": audience_id,
        "name": name, "origin": origin, "target": target, "created_at": time.time(),
    })
    if only_new:
        client.hsetnx(keys.AUDIENCES, field, value)
    else:
        client.hset(keys.AUDIENCES, field, value)


# HSETNX of many fields: one call where a command per audience would cost the worker more than Redis's work.
_REMEMBER_NEW = lua.source("remember_new_audiences")


def confirm_audiences(client: Any, destination: str, audiences: list[tuple[str, str]], *, origin: str) -> None:
    """Mark many (advertiser id, audience id) of ``destination`` as confirmed the advertiser's, and record
    those not known yet for ``audiences list`` (``remember_audience(..., only_new=True)`` with no name): two
    commands, whatever their number. ``client`` may be a pipeline."""
    if not audiences:
        return
    client.mset({keys.ownership(destination, advertiser_id, audience_id): 1
                 for advertiser_id, audience_id in audiences})
    # Every record of the call differs only in its advertiser and audience ids: the rest of its JSON is
    # written once (a delivery may confirm thousands of audiences).
    common = orjson.dumps({"destination": destination, "name": "", "origin": origin, "target": None,
                           "created_at": time.time()})[:-1]
    dumps = orjson.dumps
    arguments: list[Any] = []
    for advertiser_id, audience_id in audiences:
        arguments += (audience_entry(destination, advertiser_id, audience_id),
                      b"".join((common, b',"advertiser_id":', dumps(advertiser_id), b',"audience_id":',
                                dumps(audience_id), b"}")))
    client.eval(_REMEMBER_NEW, 1, keys.AUDIENCES, *arguments)


async def create_once(api: AudienceApi, client: redis.Redis, token: str, *, destination: str,
                      advertiser_id: str, name: str, id_key: str, origin: str,
                      target: str | None = None) -> str:
    """The id stored at ``id_key``, creating the audience ``name`` (cut to TikTok's 70 characters) if none is.

    The caller must make sure no other caller works on the same ``id_key`` at the same time (a lock): this
    function makes the sequence crash-safe, not concurrency-safe. The module docstring explains the marker.
    """
    intent = keys.create_intent(id_key)
    pipe = client.pipeline(transaction=False)  # one round trip for both looks
    pipe.get(id_key)
    pipe.exists(intent)
    known, interrupted = pipe.execute()
    if known:
        return known.decode() if isinstance(known, bytes) else str(known)
    tiktok_name = truncate_audience_name(name)
    audience_id: str | None = None
    if interrupted:
        audience_id = await find_audience_by_name(api, token, advertiser_id, tiktok_name)
        if audience_id is not None:
            log.warning("audience_adopted", destination=destination, advertiser_id=advertiser_id,
                        name=tiktok_name, audience_id=audience_id,
                        reason="an earlier create was interrupted; TikTok already has this audience")
    if audience_id is None:
        # Left in place if the call fails in any way: only a stored id proves TikTok did not create it.
        client.set(intent, orjson.dumps({"at": time.time(), "name": tiktok_name}))
        audience_id = await api.create_audience(token, advertiser_id, tiktok_name)
        log.info("audience_created", destination=destination, advertiser_id=advertiser_id, name=tiktok_name,
                 audience_id=audience_id, origin=origin)
    pipe = client.pipeline(transaction=True)
    pipe.set(id_key, audience_id)
    pipe.delete(intent)
    # We made it under this advertiser: no ownership check is needed if events later name it directly.
    pipe.set(keys.ownership(destination, advertiser_id, audience_id), 1)
    remember_audience(pipe, destination, advertiser_id, audience_id, name=tiktok_name, origin=origin,
                      target=target)
    pipe.execute()
    return audience_id


async def find_audience_by_name(api: AudienceApi, token: str, advertiser_id: str, name: str) -> str | None:
    """The id of the advertiser's newest audience called exactly ``name``, or None."""
    matches: list[dict[str, Any]] = []
    for page in range(1, _LIST_MAX_PAGES + 1):
        data = await api.list_audiences(token, advertiser_id, page=page, page_size=_LIST_PAGE_SIZE)
        items = [i for i in data.get("list") or [] if isinstance(i, dict)]
        matches.extend(i for i in items if i.get("name") == name and i.get("audience_id"))
        info = data.get("page_info") or {}
        total_pages = int(info.get("total_page") or 0) if isinstance(info, dict) else 0
        if not items or page >= total_pages:
            break
    if not matches:
        return None
    # TikTok's create_time is "YYYY-MM-DD HH:MM:SS", which sorts as text.
    newest = max(matches, key=lambda item: str(item.get("create_time") or ""))
    return str(newest["audience_id"])


def details_of(items: list[dict[str, Any]], audience_id: str) -> dict[str, Any] | None:
    """The entry for ``audience_id`` in a /dmp/custom_audience/get/ answer (``audience_details`` per item)."""
    for item in items:
        details = item.get("audience_details", item)
        if isinstance(details, dict) and str(details.get("audience_id")) == audience_id:
            return details
    return None
