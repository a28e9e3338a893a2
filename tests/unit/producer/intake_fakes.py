"""Small stand-ins for the validator and router, so intake tests pin intake's own behaviour: what it writes,
counts and answers for given routing outcomes."""

from __future__ import annotations

import hashlib
from typing import Any

import fakeredis
from redis.exceptions import ConnectionError as RedisConnectionError

from producer.routing import AudienceCreate, RouteResult
from worker.keys import Target
from worker.operations import IDFA_SHA256, Operation
from worker.settings import Settings

TARGET = Target("tiktok-main", "7000000000000000001", "1234345")
NO_IDENTIFIER = "At least one enabled identifier (Email, Phone, or Advertising ID) must have a value."


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class FakeEventError(ValueError):
    code = "invalid_event"


def fake_validate(obj: object) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise FakeEventError("an event must be a JSON object")
    if obj.get("type") not in ("track", "identify"):
        raise FakeEventError(f"unsupported event type {obj.get('type')!r}")
    return obj


class FakeRouter:
    """Audience Entered/Exited -> add/delete on TARGET by properties.email / context.device.advertisingId;
    "Create Audience" -> a create; "Explode" -> raises; anything else matches nothing."""

    def route(self, event: dict[str, Any]) -> RouteResult:
        name = event.get("event")
        if name == "Explode":
            raise RuntimeError("boom")
        if name == "Create Audience":
            props = event.get("properties", {})
            return RouteResult(creates=[AudienceCreate("tiktok-main", "7000000000000000001", props["name"])],
                               matched_mappings=1)
        if name not in ("Audience Entered", "Audience Exited"):
            return RouteResult()
        email = event.get("properties", {}).get("email")
        adid = event.get("context", {}).get("device", {}).get("advertisingId")
        dropped = {}
        if event.get("properties", {}).get("phone") == "not a phone":
            dropped["invalid_phone"] = 1
        if not email and not adid:
            return RouteResult(rejection=f"mapping addToAudience: {NO_IDENTIFIER}",
                               rejection_code="no_identifier", matched_mappings=1)
        op = Operation(TARGET, "add" if name == "Audience Entered" else "delete",
                       email=sha(email) if email else "",
                       advertising_id=sha(adid) if adid else "",
                       advertising_id_type=IDFA_SHA256 if adid else "")
        return RouteResult(operations=[op], matched_mappings=1, dropped_identifiers=dropped)


def entered(email: str | None = "person@example.com", message_id: str = "m1", **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"audience_key": "vip"}
    if email:
        props["email"] = email
    return {"type": "track", "event": "Audience Entered", "messageId": message_id, "properties": props,
            **extra}


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
    async def execute(self) -> Any:  # type: ignore[override]
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
