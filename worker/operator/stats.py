"""The operator's view of the whole service, as one dictionary (``tiktok-audiences stats``)."""

from __future__ import annotations

from typing import Any

import orjson
import redis

from worker import keys, pause
from worker.keys import Target
from worker.ledger import Ledger

TIKTOK_MINIMUM_AUDIENCE = 1000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def collect(client: redis.Redis, ledger: Ledger) -> dict[str, Any]:
    targets = sorted(_text(t) for t in client.smembers(keys.TARGETS))
    pipe = client.pipeline(transaction=False)
    for target in targets:
        pipe.get(keys.pending_count(target))
        pipe.get(keys.membership_size(target))
        pipe.xrange(keys.stream(target), count=1)
        parsed = Target.parse(target)
        pipe.get(keys.created_audience(parsed.destination, parsed.advertiser_id, parsed.audience_key))
    answers = pipe.execute()
    audiences = []
    for index, target in enumerate(targets):
        pending, size, head, created = answers[index * 4 : index * 4 + 4]
        destination, advertiser, audience = target.split("|")
        oldest = int(head[0][0].decode().split("-")[0]) / 1000 if head else None
        audiences.append({
            "target": target, "destination": destination, "advertiser_id": advertiser,
            "audience_id": _text(created) if (audience.startswith("@") and created) else audience,
            "audience_key": audience[1:] if audience.startswith("@") else None,
            "backlog": int(pending or 0), "oldest_pending_at": oldest,
            "delivered_members": int(size or 0),
            "targetable": int(size or 0) >= TIKTOK_MINIMUM_AUDIENCE,
        })
    rejected = {_text(k): int(v) for k, v in client.hgetall(keys.REJECTED).items()}
    paused = {}
    for key in client.scan_iter(match=keys.paused("*"), count=1000):
        destination = _text(key).removeprefix(keys.paused(""))
        info = pause.pause_info(client, destination)
        if info:
            paused[destination] = info
    recent = [orjson.loads(r) for r in client.lrange(keys.REJECTED_LOG, 0, 9)]
    return {
        "backlog": int(client.get(keys.BACKLOG) or 0),
        "batches": ledger.counts_by_status(),
        "rejected": rejected,
        "rejected_total": sum(rejected.values()),
        # Operations never sent because a newer event on the same user and audience had been (worker.ordering).
        "superseded": int(client.hget(keys.METRICS, "superseded") or 0),
        "recent_rejections": recent,
        # Fleet-wide counters: operations superseded by newer events; intake's events no mapping matched, opted
        # out by their integrations, and event times clamped.
        "counters": {_text(k): int(v) for k, v in client.hgetall(keys.METRICS).items()},
        "paused_destinations": paused,
        "audiences": audiences,
    }
