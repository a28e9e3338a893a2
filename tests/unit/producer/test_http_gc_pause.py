"""The cyclic collector is held off while large requests are in hand, and only then."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from producer.http.gc_pause import CollectorPause


@pytest.fixture(autouse=True)
def collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def large(request: str) -> bool:
    return request == "large"


@pytest.mark.asyncio
async def test_off_while_a_large_request_is_handled_and_on_once_it_is_answered() -> None:
    seen: list[bool] = []

    async def handler(request: str) -> str:
        seen.append(gc.isenabled())
        return "ok"

    held = CollectorPause().around(handler, large)
    assert await held("large") == "ok"
    assert await held("small") == "ok"
    assert seen == [False, True]
    assert gc.isenabled()


@pytest.mark.asyncio
async def test_a_failing_handler_turns_it_back_on() -> None:
    async def handler(request: str) -> str:
        raise ConnectionError("client left")

    pause = CollectorPause()
    with pytest.raises(ConnectionError):
        await pause.around(handler, large)("large")
    assert gc.isenabled() and pause.holders == 0


def test_overlapping_requests_keep_it_off_until_the_last_is_done() -> None:
    pause = CollectorPause()
    pause.enter()
    pause.enter()
    pause.exit()
    assert not gc.isenabled()
    pause.exit()
    assert gc.isenabled()


def test_requests_that_keep_overlapping_cannot_keep_it_off_past_the_limit() -> None:
    now = [0.0]
    pause = CollectorPause(max_pause=5, clock=lambda: now[0])
    pause.enter()
    now[0] = 4
    pause.enter()  # within the limit
    assert not gc.isenabled()
    pause.exit()
    now[0] = 6
    pause.enter()  # the first is still in hand, past the limit: collect as usual
    assert gc.isenabled()
    pause.exit()
    pause.exit()
    assert gc.isenabled()
    pause.enter()  # none in hand in between: a new pause may start
    assert not gc.isenabled()
    pause.exit()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    pause = CollectorPause()
    pause.enter()
    pause.exit()
    assert not gc.isenabled()
