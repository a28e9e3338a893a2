"""Ledger retention: delivered records and dead payloads expire after their configured times, and no index
keeps the ids of records that are gone."""

from __future__ import annotations

import time
from typing import Any

from worker import keys
from worker.ledger import BatchRecord, Ledger

TARGET = "dest|7000000000000000001|1234"


def stage(client: Any, ledger: Ledger, batch_id: str) -> BatchRecord:
    record = BatchRecord(id=batch_id, target=TARGET, destination="dest", advertiser_id="7000000000000000001",
                         audience_id="1234", action="add", rows=1, created_at=time.time() - 3600,
                         targets={TARGET: "1234"}, audiences={"1234": 1})
    pipe = client.pipeline(transaction=True)
    ledger.stage(pipe, record, b'[["a","e","","",""]]')
    pipe.execute()
    return record


def test_delivered_records_and_dead_payloads_expire_after_their_retention(redis_client: Any) -> None:
    ledger = Ledger(redis_client, delivered_retention=600, dead_retention=7200)
    delivered = ledger.update(stage(redis_client, ledger, "b-delivered"), status="delivered")
    dead = ledger.update(stage(redis_client, ledger, "b-dead"), status="dead")
    open_ = ledger.update(stage(redis_client, ledger, "b-retrying"), status="retrying")

    assert 0 < redis_client.ttl(keys.batch(delivered.id)) <= 600
    assert not redis_client.exists(keys.batch_rows(delivered.id))  # a delivered payload is not kept at all
    assert 600 < redis_client.ttl(keys.batch(dead.id)) <= 7200
    assert 600 < redis_client.ttl(keys.batch_rows(dead.id)) <= 7200  # kept for replay, then gone
    assert redis_client.ttl(keys.batch(open_.id)) == -1  # open work never expires


def test_pruning_forgets_expired_records_in_every_index(redis_client: Any) -> None:
    ledger = Ledger(redis_client, delivered_retention=600, dead_retention=600)
    kept = ledger.update(stage(redis_client, ledger, "b-kept"), status="delivered")
    for batch_id in ("b-old-1", "b-old-2"):
        ledger.update(stage(redis_client, ledger, batch_id), status="delivered")
        redis_client.delete(keys.batch(batch_id))  # as its TTL would
    redis_client.sadd(keys.TARGETS, TARGET)

    assert ledger.prune(time.time() + 1) == 2
    cursor = ledger.prune_targets(time.time() + 1)
    while cursor:
        cursor = ledger.prune_targets(time.time() + 1, cursor)
    cursor = ledger.prune_audiences(time.time() + 1)
    while cursor:
        cursor = ledger.prune_audiences(time.time() + 1, cursor)

    for index in (keys.BATCHES, keys.batches_by_status("delivered"), keys.batches_by_audience("1234")):
        assert redis_client.zrange(index, 0, -1) == [kept.id.encode()], index
    assert [r.id for r in ledger.list(target=TARGET)] == [kept.id]


def test_a_target_naming_its_audience_id_is_listed_through_that_ids_index(redis_client: Any) -> None:
    ledger = Ledger(redis_client, delivered_retention=600, dead_retention=600)
    direct = stage(redis_client, ledger, "b-direct")
    engage = "dest|7000000000000000001|@engaged"
    record = BatchRecord(id="b-engage", target=engage, destination="dest", advertiser_id="7000000000000000001",
                         audience_id="5678", action="add", rows=1, targets={engage: "5678"}, audiences={"5678": 1})
    pipe = redis_client.pipeline(transaction=True)
    ledger.stage(pipe, record, b'[["a","e","","",""]]')
    pipe.execute()

    assert not redis_client.exists(keys.batches_by_target(TARGET))  # one index entry per audience, not two
    assert [r.id for r in ledger.list(target=TARGET)] == [direct.id]
    assert [r.id for r in ledger.list(audience_id="1234")] == [direct.id]
    assert redis_client.zrange(keys.batches_by_target(engage), 0, -1) == [b"b-engage"]  # its own index
    assert [r.id for r in ledger.list(target=engage)] == ["b-engage"]
