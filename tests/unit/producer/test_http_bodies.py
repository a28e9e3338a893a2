"""Large JSON arrays parsed in pieces that yield to the event loop, with exactly the result of one parse."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from producer.http.bodies import PARSE_PIECE, parse_large_array

pytestmark = pytest.mark.asyncio


def event(i: int) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "messageId": f"m{i}",
            # A nested array of objects (a cut may land between them) and strings holding "},{".
            "properties": {"products": [{"sku": f"s{i}"}, {"sku": "},{"}, {"note": '"},{"'}]},
            "context": {"traits": {"email": f"p{i}@example.com", "bio": "a },{ b } , { c"}}}


def big(events: list[Any], *, indent: bool = False) -> bytes:
    return orjson.dumps(events, option=orjson.OPT_INDENT_2 if indent else 0)


async def parsed_with_turns(body: bytes) -> tuple[list[Any] | None, int]:
    turns = 0
    done = False

    async def ticker() -> None:
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    ticking = asyncio.ensure_future(ticker())
    result = await parse_large_array(body)
    done = True
    await ticking
    return result, turns


@pytest.mark.parametrize("indent", [False, True], ids=["compact", "indented"])
async def test_a_large_array_parses_as_one_parse_would_and_yields_between_pieces(indent: bool) -> None:
    events = [event(i) for i in range(30_000)]
    body = big(events, indent=indent)
    assert len(body) > 5 * PARSE_PIECE
    result, turns = await parsed_with_turns(body)
    assert result == orjson.loads(body)
    assert turns >= 5  # the loop ran between pieces


async def test_small_bodies_and_non_arrays_are_left_to_a_single_parse() -> None:
    assert await parse_large_array(b'[{"a": 1}]') is None
    assert await parse_large_array(b'{"batch": [' + b'{"a": 1},' * PARSE_PIECE + b'{"a": 1}]}') is None


async def test_invalid_json_is_left_to_the_single_parse_that_names_the_error() -> None:
    body = big([event(i) for i in range(10_000)])
    assert await parse_large_array(body[:-1]) is None  # the closing bracket missing
    assert await parse_large_array(body + b" trailing") is None


async def test_an_array_of_arrays_parses_whole() -> None:
    body = orjson.dumps([[{"a": i}, {"b": i}] for i in range(100_000)])
    assert len(body) > PARSE_PIECE
    assert await parse_large_array(body) in (None, orjson.loads(body))
