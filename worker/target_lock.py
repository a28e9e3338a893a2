"""One drainer per lane: a Redis lock with a token, a TTL and a heartbeat.

Delivery order per audience holds because only the lock's holder reads, sends and acknowledges the operations
of its lane's targets. The TTL is short and renewed while the holder works, so a worker killed mid-batch frees
its lane within one TTL; every send is preceded by a renewal that also checks ownership, and acknowledgement is
fenced by the token (see lane_ack.lua), so a holder that lost its lock cannot acknowledge another's work.
"""

from __future__ import annotations

import secrets
from typing import Any

import redis

from worker import lua

_SCRIPT = lua.source("target_lock")


class TargetLock:
    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        self._redis = client
        self.key = key
        self.token = secrets.token_hex(12)
        self._ttl_ms = int(ttl * 1000)
        self._script = client.register_script(_SCRIPT)

    def _call(self, verb: str) -> bool:
        return bool(self._script(keys=[self.key], args=[verb, self.token, self._ttl_ms]))

    def acquire(self) -> bool:
        return self._call("acquire")

    def extend(self) -> bool:
        """Renew the TTL; False means the lock was lost and the caller must stop touching the target."""
        return self._call("extend")

    def stage_acquire(self, pipe: Any) -> None:
        """Queue :meth:`acquire` on a pipeline; its reply is 1 if the lock was taken."""
        pipe.eval(_SCRIPT, 1, self.key, "acquire", self.token, self._ttl_ms)

    def stage_extend(self, pipe: Any) -> None:
        """Queue :meth:`extend` on a pipeline (as EVAL: a registered script in a pipeline costs a SCRIPT
        EXISTS round trip of its own); its reply is 1 while the lock is held."""
        pipe.eval(_SCRIPT, 1, self.key, "extend", self.token, self._ttl_ms)

    def release(self) -> None:
        self._call("release")
