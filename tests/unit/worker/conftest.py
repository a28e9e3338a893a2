"""Fixtures of the worker's unit tests: fakeredis, a scripted TikTok client and an always-open limiter in a
WorkerContext (the doubles live in tests.support.worker)."""

from __future__ import annotations

import fakeredis
import pytest

from core.destinations import Destination, parse_destinations
from core.settings import Settings
from tests.support.worker import ADVERTISER, TOKEN, OpenLimiter, ScriptedClient, StaticDestinations
from worker.context import DeliveryApi, WorkerContext
from worker.ledger import Ledger
from worker.membership import Membership


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def settings() -> Settings:
    return Settings(flush_interval=0.001, batch_size=100, backoff_base=1, retry_window=60)


@pytest.fixture
def destination(monkeypatch: pytest.MonkeyPatch) -> Destination:
    monkeypatch.setenv("UNIT_TOKEN", TOKEN)
    config = parse_destinations({"destinations": [{
        "id": "dest", "access_token_env": "UNIT_TOKEN", "advertiser_ids": [ADVERTISER],
        "native": {"advertiser_id": ADVERTISER, "auto_create": True},
    }]})
    return config.destinations[0]


@pytest.fixture
def client() -> ScriptedClient:
    return ScriptedClient()


@pytest.fixture
def ctx(redis_client: fakeredis.FakeRedis, settings: Settings, destination: Destination,
        client: DeliveryApi) -> WorkerContext:
    return WorkerContext(
        settings=settings, redis=redis_client, destinations=StaticDestinations([destination]), client=client,
        limiter=OpenLimiter(), ledger=Ledger(redis_client, delivered_retention=3600, dead_retention=3600),
        membership=Membership(redis_client),
    )
