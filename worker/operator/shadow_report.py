"""What shadow destinations would have sent: adds and removes per audience over a time range, from the ledger's
``shadow`` records (worker.shadow), to compare with another delivery's overview (Segment's, per audience).

Rows are counted as a request would have carried them: after several operations on one user in a batch were
collapsed to the latest, one row per user and audience. A batch counts in the range its record was finished
in; records expire with ``TTA_DELIVERED_RETENTION``, so a range older than that reads as empty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from worker import keys
from worker.keys import Target
from worker.ledger import Ledger
from worker.shadow import WOULD_CREATE

READ_AT_ONCE = 1000


@dataclass(slots=True)
class AudienceCounts:
    destination: str
    advertiser_id: str
    audience_id: str  # ``would-create:<key>`` for an audience a live destination would have created
    adds: int = 0
    removes: int = 0
    requests: int = 0  # shadow batches that carried rows of this audience
    would_create: bool = False


@dataclass(slots=True)
class ShadowReport:
    since: float
    until: float
    audiences: list[AudienceCounts] = field(default_factory=list)
    requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "requests": self.requests,
                "audiences": [asdict(a) for a in self.audiences]}


def shadow_report(client: redis.Redis, ledger: Ledger, since: float, until: float,
                  audience_id: str | None = None) -> ShadowReport:
    """Sum the shadow batches finished in [since, until] per audience (only ``audience_id``'s if given)."""
    report = ShadowReport(since=since, until=until)
    by_audience: dict[tuple[str, str, str], AudienceCounts] = {}
    start = 0
    while True:
        raw = client.zrangebyscore(keys.batches_by_status("shadow"), since, until, start=start, num=READ_AT_ONCE)
        batch_ids = [r.decode() if isinstance(r, bytes) else str(r) for r in raw]
        if not batch_ids:
            break
        start += len(batch_ids)
        for record in ledger.get_many(batch_ids):
            if record is None or record.status != "shadow":
                continue
            if audience_id and not record.holds_audience(audience_id):
                continue
            report.requests += 1
            where = {a: Target.parse(t) for t, a in record.targets.items()}
            for audience, rows in record.audiences.items():
                if audience_id and audience != audience_id:
                    continue
                spec = where.get(audience)
                advertiser = spec.advertiser_id if spec else record.advertiser_id
                key = (record.destination, advertiser, audience)
                counts = by_audience.get(key)
                if counts is None:
                    counts = by_audience[key] = AudienceCounts(record.destination, advertiser, audience,
                                                               would_create=audience.startswith(WOULD_CREATE))
                counts.requests += 1
                if record.action == "add":
                    counts.adds += rows
                else:
                    counts.removes += rows
        if len(batch_ids) < READ_AT_ONCE:
            break
    report.audiences = sorted(by_audience.values(), key=lambda c: (c.destination, c.advertiser_id, c.audience_id))
    return report
