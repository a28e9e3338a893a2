"""Pausing a destination whose token TikTok refused: no more calls with it until an operator resumes it."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis

from worker import keys


def pause(client: redis.Redis, destination: str, *, reason: str, code: int | None) -> None:
    info = {"reason": reason, "code": code, "since": time.time()}
    client.set(keys.paused(destination), orjson.dumps(info), nx=True)


def pause_info(client: redis.Redis, destination: str) -> dict[str, Any] | None:
    raw = client.get(keys.paused(destination))
    return orjson.loads(raw) if raw else None


def resume(client: redis.Redis, destination: str) -> bool:
    """Lift the pause and make the destination's lane due now. Returns whether it was paused."""
    was_paused = bool(client.delete(keys.paused(destination)))
    client.zadd(keys.READY, {destination: time.time()})
    return was_paused
