"""Shadow mode: a destination (``mode: shadow``) whose requests are recorded instead of sent.

It runs beside a live delivery (Segment's, typically) to compare before switching. Everything up to the TikTok
call runs as for a live destination: routing, mapping, hashing, collapsing several operations on one user,
cutting requests that mix audiences. Then, instead of calling TikTok, the drain records each would-be request
in the ledger with status ``shadow`` (its rows per audience and action, as a delivered batch would be), and the
report (``tiktok-audiences shadow report``) sums them per audience over a time range.

A shadow destination makes no TikTok call at all, so it can never change anything at TikTok and never spends
the token's rate limit (a live delivery may be using the same token):

- ownership checks are skipped: an audience id named by an event or mapping is taken as given;
- audiences a live destination would create are not created: they are recorded under the placeholder id
  ``would-create:<audience key>`` (and in a set the report lists), unless this service created them earlier;
- membership is *not* recorded. The delivered-membership record says what TikTok has: it decides what is news,
  gives the audience's size and is what ``audiences resync`` re-sends, so it must never hold what was not
  sent. Switching a destination from shadow to live therefore starts from the record as it was, and no operation
  is skipped for having been "delivered" in shadow. In shadow every operation that survives collapsing counts,
  as every event does in Segment's delivery overview (a later event on a user is not judged against what shadow
  "sent" before it).
"""

from __future__ import annotations

import time

from worker import keys
from worker.context import WorkerContext
from worker.keys import Target
from worker.lane_resolve import Resolution, Resolver
from worker.ledger import BatchRecord

# The audience id a shadow batch names for an audience a live destination would have created.
WOULD_CREATE = "would-create:"


def would_create(audience_key: str) -> str:
    return f"{WOULD_CREATE}{audience_key}"


class ShadowResolver(Resolver):
    """Audience ids of a shadow lane's targets without a TikTok call (see the module's docstring)."""

    def __init__(self, ctx: WorkerContext, lane: str) -> None:
        async def no_slot() -> None:  # never called: a shadow lane makes no TikTok call
            raise AssertionError("a shadow destination takes no rate-limit slot")

        super().__init__(ctx, lane, "", "", no_slot)

    async def resolve(self, targets: list[str], quota: int, idle_quota: int | None = None) -> Resolution:
        found = Resolution()
        parsed = [Target.parse(t) for t in targets]
        pipe = self.ctx.redis.pipeline(transaction=False)
        creates = [spec for spec in parsed if spec.needs_audience]
        for spec in creates:
            pipe.get(keys.created_audience(spec.destination, spec.advertiser_id, spec.audience_key))
        created = dict(zip((s.name for s in creates), pipe.execute() if creates else [], strict=True))
        new: list[str] = []
        for spec in parsed:
            if not spec.needs_audience:
                found.audience_of[spec.name] = spec.audience
                continue
            existing = created.get(spec.name)
            if existing:
                found.audience_of[spec.name] = existing.decode() if isinstance(existing, bytes) else str(existing)
            else:
                found.audience_of[spec.name] = would_create(spec.audience_key)
                new.append(f"{spec.advertiser_id}|{spec.audience_key}")
        if new:
            self.ctx.redis.sadd(keys.shadow_creates(self.lane), *new)
        return found


def record_shadow(ctx: WorkerContext, record: BatchRecord) -> None:
    """Record a cut batch as sent in shadow: status ``shadow``, finished now; its rows per audience are already
    in the record (``audiences``), its action too. Nothing is sent and no membership is recorded."""
    now = time.time()
    ctx.ledger.update(record, status="shadow", first_attempt_at=record.first_attempt_at or now,
                      finished_at=now, next_attempt_at=None, last_message="shadow: recorded, not sent")
