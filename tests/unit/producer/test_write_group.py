"""Group commit of intake writes: concurrent requests share a round trip, keep their order, and fail together."""

from __future__ import annotations

import asyncio
from typing import Any

import fakeredis
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from producer.write_group import WriteGroup
from worker import keys
from worker.operations import decode_entry
from worker.queue import ENTRY_FIELD, BacklogCeiling

pytestmark = pytest.mark.asyncio

TARGET = "dest|7000000000000000001|123"


def packed(n: int, start: int = 0) -> list[list[str]]:
    return [["a", f"{i:064x}", "", "", ""] for i in range(start, start + n)]


class CountingAsyncRedis(fakeredis.aioredis.FakeRedis):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipelines = 0

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        self.pipelines += 1
        return super().pipeline(transaction, shard_hint)


async def test_requests_waiting_together_share_one_round_trip_in_arrival_order() -> None:
    client = CountingAsyncRedis()
    group = WriteGroup(client, batch_size=10_000)

    backlogs = await asyncio.gather(*(group.append({TARGET: packed(2, 2 * i)}, 100.0 + i) for i in range(5)))

    assert client.pipelines == 1
    assert backlogs == [10] * 5
    entries: Any = await client.xrange(keys.stream(TARGET))
    [(_, fields)] = entries
    assert [op.email for op in decode_entry(fields[ENTRY_FIELD.encode()])] == [f"{i:064x}" for i in range(10)]
    # The earliest due time wins, for the target in its lane's due set and for the lane in the ready index.
    assert await client.zscore(keys.lane_due("dest"), TARGET) == await client.zscore(keys.READY, "dest") == 100.0


async def test_a_full_batch_is_due_at_once() -> None:
    client = fakeredis.aioredis.FakeRedis()
    await WriteGroup(client, batch_size=3).append({TARGET: packed(3)}, 500.0)

    assert await client.zscore(keys.lane_due("dest"), TARGET) == await client.zscore(keys.READY, "dest") == 0


class DownPipelineRedis(fakeredis.aioredis.FakeRedis):
    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)

        async def fail() -> Any:
            raise RedisConnectionError("Connection refused")

        pipe.execute = fail  # type: ignore[method-assign,assignment]
        return pipe


async def test_a_failed_write_fails_every_request_in_it_and_the_next_write_still_runs() -> None:
    group = WriteGroup(DownPipelineRedis(), batch_size=10_000)

    results = await asyncio.gather(*(group.append({TARGET: packed(1, i)}, 1.0) for i in range(3)),
                                   return_exceptions=True)

    assert all(isinstance(r, RedisConnectionError) for r in results)
    with pytest.raises(RedisConnectionError):
        await group.append({TARGET: packed(1)}, 1.0)


async def test_at_the_backlog_ceiling_each_request_that_fits_alone_is_stored_and_the_rest_refused() -> None:
    client = CountingAsyncRedis()
    group = WriteGroup(client, batch_size=10_000, ceiling=10)
    await group.append({TARGET: packed(4)}, 100.0)
    # 4 queued; 3 + 4 + 2 together would make 13: the first and the third fit (4 + 3 + 2 = 9), the second not.
    outcomes = await asyncio.gather(group.append({TARGET: packed(3, 10)}, 100.0),
                                    group.append({TARGET: packed(4, 20)}, 100.0),
                                    group.append({TARGET: packed(2, 30)}, 100.0), return_exceptions=True)
    assert outcomes[0] == 7 and outcomes[2] == 9
    assert isinstance(outcomes[1], BacklogCeiling)
    assert int(await client.get(keys.BACKLOG) or 0) == 9
