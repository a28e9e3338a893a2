"""Throttle cooldowns as operators see them, and lifting one by hand."""

from __future__ import annotations

import time

import fakeredis
import pytest

from core.destinations import DestinationsFile, parse_destinations
from worker import keys
from worker.operator.cooldowns import cooldowns, lift

TOKEN_ENV = "COOLDOWN_TEST_TOKEN"


@pytest.fixture
def destinations(monkeypatch: pytest.MonkeyPatch) -> DestinationsFile:
    monkeypatch.setenv(TOKEN_ENV, "a-token")
    return parse_destinations({"destinations": [
        {"id": "main", "access_token_env": TOKEN_ENV, "advertiser_ids": ["7000000000000000001"]},
        {"id": "unset", "access_token_env": "COOLDOWN_TEST_UNSET", "advertiser_ids": ["7000000000000000002"]},
    ]})


def test_a_throttled_token_shows_its_rest_and_when_its_lane_is_due(destinations: DestinationsFile) -> None:
    client = fakeredis.FakeRedis()
    token = destinations.get("main").token_id()
    client.set(keys.cooldown(token), 1, px=120_000)
    client.zadd(keys.READY, {"main": 1_900_000_000.0})
    (main,) = cooldowns(client, destinations)  # "unset" cannot read its token: left out
    assert main.destination == "main"
    assert 100 < main.seconds_left <= 120
    assert main.lane_due_at == 1_900_000_000.0


def test_a_rested_token_is_not_cooling_down(destinations: DestinationsFile) -> None:
    (main,) = cooldowns(fakeredis.FakeRedis(), destinations)
    assert (main.seconds_left, main.lane_due_at) == (0, None)


def test_lifting_ends_the_rest_and_makes_the_lane_due_now(destinations: DestinationsFile) -> None:
    client = fakeredis.FakeRedis()
    token = destinations.get("main").token_id()
    client.set(keys.cooldown(token), 1, px=300_000)
    client.zadd(keys.READY, {"main": time.time() + 300})
    before = time.time()
    left = lift(client, "main", token)
    assert 290 < left <= 300
    assert not client.exists(keys.cooldown(token))
    assert before <= float(client.zscore(keys.READY, "main") or 0) <= time.time()
    assert lift(client, "main", token) == 0  # nothing left to lift
