"""The audiences the service knows, with the membership it has delivered to each (``audiences list``).

Three sources are joined: the audiences the service created or checked (:data:`worker.keys.AUDIENCES`), the
targets operations were queued for (an Engage audience still to be created shows up here before it has an id),
and the legacy creates that failed. Membership is counted per target (:class:`worker.membership.Membership`);
an auto-created audience's members were delivered through its ``@<key>`` target, so they are summed into the
row of the id that target resolved to.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from worker import keys
from worker.keys import Target
from worker.operator.stats import TIKTOK_MINIMUM_AUDIENCE


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _row(destination: str, advertiser_id: str, audience_id: str | None, name: str,
         origin: str) -> dict[str, Any]:
    return {"destination": destination, "advertiser_id": advertiser_id, "audience_id": audience_id,
            "name": name, "origin": origin, "created_at": None, "delivered_members": 0, "targetable": False,
            "status": "ok" if audience_id else "to create", "message": ""}


def known_audiences(client: redis.Redis) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for raw in client.hvals(keys.AUDIENCES):
        doc = orjson.loads(raw)
        row = _row(doc["destination"], doc["advertiser_id"], doc["audience_id"], doc.get("name") or "",
                   doc.get("origin") or "")
        row["created_at"] = doc.get("created_at")
        rows[(row["destination"], row["advertiser_id"], row["audience_id"])] = row

    targets = sorted(_text(t) for t in client.smembers(keys.TARGETS))
    parsed = [Target.parse(t) for t in targets]
    pipe = client.pipeline(transaction=False)
    for target in parsed:
        pipe.get(keys.membership_size(target.name))
        if target.needs_audience:
            pipe.get(keys.created_audience(target.destination, target.advertiser_id, target.audience_key))
        else:
            pipe.exists(keys.ownership(target.destination, target.advertiser_id, target.audience))
    answers = pipe.execute()
    for index, target in enumerate(parsed):
        size, extra = int(answers[2 * index] or 0), answers[2 * index + 1]
        if target.needs_audience:
            audience_id = _text(extra) if extra else None
            key = (target.destination, target.advertiser_id, audience_id or target.audience)
            row = rows.get(key) or _row(target.destination, target.advertiser_id, audience_id,
                                        target.audience_key, "auto-create")
        else:
            key = (target.destination, target.advertiser_id, target.audience)
            row = rows.get(key) or _row(target.destination, target.advertiser_id, target.audience, "",
                                        "event/mapping")
            if not extra and key not in rows:
                row["status"] = "ownership not confirmed"
        row["delivered_members"] += size
        rows[key] = row

    out = sorted(rows.values(), key=lambda r: (r["destination"], r["advertiser_id"], r["name"],
                                               r["audience_id"] or ""))
    for row in out:
        row["targetable"] = row["delivered_members"] >= TIKTOK_MINIMUM_AUDIENCE
    for raw in client.hvals(keys.CREATE_FAILURES):
        doc = orjson.loads(raw)
        row = _row(doc["destination"], doc["advertiser_id"], None, doc["name"], "legacy-create")
        row.update(status=f"create {doc['status']}", message=doc.get("message") or "",
                   created_at=doc.get("at"))
        out.append(row)
    return out
