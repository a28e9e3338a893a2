"""The enqueue script refuses, atomically and writing nothing, an append that would pass the backlog ceiling."""

from __future__ import annotations

import fakeredis
import pytest

from worker import keys
from worker.queue import BacklogCeiling, backlog_after, enqueue_command

OPS = [["a", "e" * 64, "", "", "", 0, ""]]


def grouped(n: int, target: str = "d|1|2") -> dict[str, list[list[object]]]:
    return {target: OPS * n}


def append(client: fakeredis.FakeRedis, n: int, ceiling: int) -> int:
    ops = grouped(n)
    return backlog_after(client.eval(*enqueue_command(ops, 0.0, 10_000, 0.0, ceiling)), ops, ceiling)


def test_an_append_within_the_ceiling_goes_through_up_to_exactly_the_ceiling() -> None:
    client = fakeredis.FakeRedis()
    assert append(client, 60, ceiling=100) == 60
    assert append(client, 40, ceiling=100) == 100


def test_an_append_past_the_ceiling_writes_nothing_and_says_how_full_it_is() -> None:
    client = fakeredis.FakeRedis()
    append(client, 60, ceiling=100)
    with pytest.raises(BacklogCeiling) as refused:
        append(client, 41, ceiling=100)
    assert (refused.value.backlog, refused.value.ceiling, refused.value.adding) == (60, 100, 41)
    assert int(client.get(keys.BACKLOG) or 0) == 60
    assert client.xlen(keys.stream("d|1|2")) == 1  # only the first append's entry


def test_no_ceiling_means_no_limit() -> None:
    client = fakeredis.FakeRedis()
    assert append(client, 500, ceiling=0) == 500
