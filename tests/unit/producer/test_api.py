"""The Python API: ``enqueue_events`` from user code, through the same intake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fakeredis
import orjson
import pytest

from producer.api import enqueue_events
from producer.intake import StoreUnavailable
from tests.support.intake import (
    DESTINATIONS,
    TARGET,
    DownPipeline,
    entered,
    router,
    settings,
)
from worker import keys


def test_events_are_enqueued_in_chunks_and_results_index_the_whole_input() -> None:
    client = fakeredis.FakeRedis()
    events = (entered(f"u{i}@example.com", f"m{i}") if i % 3 else entered(None, f"m{i}") for i in range(7))

    result = enqueue_events(events, settings=settings(), router=router(), redis=client, chunk=2)

    assert (result.accepted, result.rejected, result.operations) == (4, 3, 4)
    assert [r["index"] for r in result.results] == [0, 3, 6]
    assert [r["messageId"] for r in result.results] == ["m0", "m3", "m6"]
    assert client.xlen(keys.stream(TARGET.name)) == 3  # the chunks that had accepted events


def test_the_router_comes_from_the_configured_destinations_file(tmp_path: Path) -> None:
    config = tmp_path / "destinations.yaml"
    config.write_bytes(orjson.dumps(DESTINATIONS))
    client = fakeredis.FakeRedis()

    result = enqueue_events([entered()], settings=settings(config_path=str(config)), redis=client)

    assert result.operations == 1


class FailsAfterFirstWrite(fakeredis.FakeRedis):
    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        if getattr(self, "wrote", False):
            return DownPipeline()
        self.wrote = True
        return super().pipeline(transaction, shard_hint)


def test_a_failure_says_what_earlier_chunks_stored() -> None:
    client = FailsAfterFirstWrite()
    with pytest.raises(StoreUnavailable) as raised:
        enqueue_events([entered("a@example.com"), entered("b@example.com"), entered("c@example.com")],
                       settings=settings(), router=router(), redis=client, chunk=1)

    assert raised.value.partial is not None
    assert (raised.value.partial.accepted, raised.value.partial.operations) == (1, 1)
    assert client.xlen(keys.stream(TARGET.name)) == 1
