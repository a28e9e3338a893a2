"""Test support for the intake, HTTP and ingest tests: a destinations file compiled by the real router, Engage
events of the shape Segment sends, and Redis clients that fail the way a lost Redis does."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import fakeredis
from redis.exceptions import ConnectionError as RedisConnectionError

from core.destinations import parse_destinations
from core.settings import Settings
from producer.routing import RoutedOperation, Router, RouteResult
from worker.keys import Target

ADVERTISER = "7000000000000000001"
AUDIENCE = "1234345"
TARGET = Target("tiktok-main", ADVERTISER, AUDIENCE)
NO_IDENTIFIER = "At least one enabled identifier (Email, Phone, or Advertising ID) must have a value."

DESTINATIONS = {
    "destinations": [{
        "id": "tiktok-main",
        "access_token_env": "TIKTOK_ACCESS_TOKEN",
        "advertiser_ids": [ADVERTISER],
        "mappings": [
            {"action": "addToAudience"},
            {"action": "removeFromAudience"},
            {"action": "createAudience",
             "fields": {"selected_advertiser_id": ADVERTISER,
                        "custom_audience_name": {"@path": "$.properties.audience_name"}}},
        ],
    }]
}


@lru_cache(maxsize=1)
def router() -> Router:
    return Router.from_destinations(parse_destinations(DESTINATIONS))


class ExplodingRouter(Router):
    """The real router, except that an event named "Explode" hits a bug."""

    def route_into(self, event: dict[str, Any], sink: list[RoutedOperation], event_ms: int = 0,
                   message_id: str = "") -> int | RouteResult:
        if event.get("event") == "Explode":
            raise RuntimeError("boom")
        return super().route_into(event, sink, event_ms, message_id)


def exploding_router() -> ExplodingRouter:
    return ExplodingRouter.from_destinations(parse_destinations(DESTINATIONS))


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def entered(email: str | None = "person@example.com", message_id: str = "m1", *, exited: bool = False,
            **traits: Any) -> dict[str, Any]:
    """An Engage "Audience Entered" (or Exited) track call for TARGET's audience."""
    if email is not None:
        traits["email"] = email
    return {
        "type": "track",
        "event": "Audience Exited" if exited else "Audience Entered",
        "userId": "user-1",
        "messageId": message_id,
        "properties": {"audience_key": "vip", "vip": not exited},
        "context": {
            "traits": traits,
            "personas": {"computation_key": "vip", "external_audience_id": AUDIENCE,
                         "audience_settings": {"advertiserId": ADVERTISER}},
        },
    }


def create_audience(name: str, message_id: str = "c1") -> dict[str, Any]:
    return {"type": "track", "event": "Create Audience", "userId": "ops", "messageId": message_id,
            "properties": {"audience_name": name}}


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"write_keys": "", "webhook_secret": "", "flush_interval": 2.0,
                              "batch_size": 10_000, "backlog_limit": 1_000_000}
    values.update(overrides)
    return Settings(**values)


class DownPipeline:
    """A pipeline that queues commands and then fails to send them, like a Redis that went away."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: self

    def execute(self) -> Any:
        raise RedisConnectionError("Connection refused")


class AsyncDownPipeline(DownPipeline):
    async def execute(self) -> Any:
        raise RedisConnectionError("Connection refused")


class PipelineDownRedis(fakeredis.FakeRedis):
    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return DownPipeline()


class AsyncPipelineDownRedis(fakeredis.aioredis.FakeRedis):
    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return AsyncDownPipeline()


class AsyncDownRedis(fakeredis.aioredis.FakeRedis):
    """Every command fails (PING included)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        raise RedisConnectionError("Connection refused")

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        return AsyncDownPipeline()
