"""Re-sending an audience's recorded membership (``tiktok-audiences audiences resync``).

The delivered-membership record keeps, for each current member, the SHA-256 digests it was sent with
(worker.membership's identifiers hash). A resync reads them and enqueues an ``add`` per member through the queue
contract (worker.queue), exactly as the intake does: lanes then deliver them like any other operation, with the
rate limit, retries, the ledger and the membership record.

Each add carries the member's recorded event time plus one millisecond and no message id. One millisecond later,
so the record takes it as news (a resend of the very event already applied would be a no-op); its recorded time,
so an event on that user newer than what was delivered still wins, whichever arrives first (an event at exactly
that millisecond without a message id ties, and the later arrival wins, as for any two such events).

Members recorded before the identifiers were kept have none and cannot be re-sent; they are counted apart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from worker import keys
from worker.event_order import EVENT_MS_OFFSET, ORDER_KEY_WIDTH
from worker.keys import Target
from worker.membership import identifiers_key, unpack_identifiers
from worker.operations import ACTION_CODE, ADID_TYPE_CODE
from worker.queue import backlog_after, enqueue_command

SCAN_COUNT = 1000


@dataclass(slots=True)
class MemberChunk:
    """Part of an audience's record: the adds to send, and how many of its members have no identifiers."""

    adds: list[list[Any]]  # packed operations (worker.operations' stream form)
    without_identifiers: int


def targets_of(client: redis.Redis, audience: str) -> list[str]:
    """The targets whose rows go to ``audience``: a target name, a TikTok audience id (named by events or
    mappings, or one this service created for an Engage audience), or an Engage audience key (``@key``)."""
    names = sorted(_text(t) for t in cast(set[bytes], client.smembers(keys.TARGETS)))
    if audience in names:
        return [audience]
    found = []
    for name in names:
        try:
            spec = Target.parse(name)
        except ValueError:
            continue
        if spec.audience in (audience, f"@{audience.lstrip('@')}"):
            found.append(name)
        elif spec.needs_audience:
            created = client.get(keys.created_audience(spec.destination, spec.advertiser_id, spec.audience_key))
            if created is not None and _text(created) == audience:
                found.append(name)
    return found


def member_chunks(client: redis.Redis, target: str) -> Iterator[MemberChunk]:
    """The target's current members as adds, a chunk per scan step of its record."""
    record, identifiers = keys.membership(target), identifiers_key(target)
    cursor = 0
    while True:
        cursor, entries = client.hscan(record, cursor, count=SCAN_COUNT)
        members = [(field, value) for field, value in cast(dict[bytes, bytes], entries).items()
                   if value.endswith(b"a")]
        found = cast(list[bytes | None], client.hmget(identifiers, [f for f, _ in members])) if members else []
        adds: list[list[Any]] = []
        missing = 0
        for (_, value), packed in zip(members, found, strict=True):
            if packed is None:
                missing += 1
                continue
            email, phone, adid_type, adid = unpack_identifiers(_text(packed))
            adds.append([ACTION_CODE["add"], email, phone, adid, ADID_TYPE_CODE[adid_type] if adid else "",
                         _event_ms(_text(value)) + 1, ""])
        if adds or missing:
            yield MemberChunk(adds, missing)
        if int(cursor) == 0:
            return


def enqueue_adds(client: redis.Redis, target: str, adds: list[list[Any]], *, flush_interval: float,
                 batch_size: int, ceiling: int = 0) -> int:
    """Append ``adds`` to ``target``'s stream as the intake would; returns the backlog afterwards. Raises
    worker.queue.BacklogCeiling when the backlog has no room for them (nothing written)."""
    grouped = {target: adds}
    reply = client.eval(*enqueue_command(grouped, time.time() + flush_interval, batch_size, 0.0, ceiling))
    return backlog_after(reply, grouped, ceiling)


def _event_ms(value: str) -> int:
    """The event time of a record value: its order key's first 14 digits (written before event times: the
    15-digit stream position ms, see membership.lua)."""
    if len(value) == ORDER_KEY_WIDTH + 1:
        return int(value[:14]) - EVENT_MS_OFFSET
    return int(value[2:15])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
