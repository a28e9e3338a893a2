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
    """Lift the pause and make the destination's targets due now. Returns whether it was paused."""
    was_paused = bool(client.delete(keys.paused(destination)))
    prefix = f"{destination}|"
    targets = [t.decode() if isinstance(t, bytes) else t for t in client.smembers(keys.TARGETS)]
    mine = [t for t in targets if t.startswith(prefix)]
    if mine:
        client.zadd(keys.READY, dict.fromkeys(mine, time.time()))
    return was_paused
