"""Readiness proves the write path: the probe changes nothing, and fails where an enqueue would."""

from __future__ import annotations

import fakeredis
import redis

from worker import keys
from worker.readiness import PROBE_KEYS, check_write_path


def test_a_writable_redis_is_ready_and_the_probe_writes_nothing() -> None:
    client = fakeredis.FakeRedis()
    client.zadd(keys.READY, {"d|1|2": 5.0})
    assert check_write_path(client) is None
    assert client.zrange(keys.READY, 0, -1, withscores=True) == [(b"d|1|2", 5.0)]
    assert client.keys("*") == [keys.READY.encode()]


def test_the_probe_touches_keys_of_the_enqueue_layout() -> None:
    assert keys.READY in PROBE_KEYS and keys.BACKLOG in PROBE_KEYS
    assert any(k.startswith(f"{keys.PREFIX}:q:{{") for k in PROBE_KEYS)  # a target's stream, hash-tagged


class RefusingRedis(fakeredis.FakeRedis):
    def eval(self, *args: object, **kwargs: object) -> object:
        raise redis.exceptions.ReadOnlyError("You can't write against a read only replica.")


def test_a_redis_that_refuses_writes_is_not_ready_and_says_why() -> None:
    problem = check_write_path(RefusingRedis())
    assert problem is not None and "read only replica" in problem
