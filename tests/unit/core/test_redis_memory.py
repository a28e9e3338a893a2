"""Redis out of memory recognised however it arrives, and logged once per episode."""

from __future__ import annotations

from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ExecAbortError, OutOfMemoryError, ResponseError

from core.redis_memory import OutOfMemoryEpisode, is_out_of_memory, memory_state

OOM = "OOM command not allowed when used memory > 'maxmemory'."


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    info = warning


def test_out_of_memory_is_recognised_directly_wrapped_or_in_a_transaction() -> None:
    assert is_out_of_memory(OutOfMemoryError(OOM))
    assert is_out_of_memory(ExecAbortError("Transaction discarded because of previous errors: " + OOM))
    try:
        try:
            raise OutOfMemoryError(OOM)
        except OutOfMemoryError as inner:
            raise RuntimeError("kombu: publish failed") from inner
    except RuntimeError as outer:
        assert is_out_of_memory(outer)
    assert not is_out_of_memory(RedisConnectionError("Connection refused"))
    assert not is_out_of_memory(ResponseError("WRONGTYPE Operation against a key"))


def test_an_episode_is_logged_once_when_it_starts_and_once_when_it_ends() -> None:
    log, episode = Log(), OutOfMemoryEpisode("scheduler")
    for _ in range(50):
        assert episode.note(OutOfMemoryError(OOM), log)
    episode.note_success(log)
    episode.note_success(log)
    assert [event for event, _ in log.lines] == ["redis_out_of_memory", "redis_memory_recovered"]
    assert not episode.note(RedisConnectionError("gone"), log)  # not ours to handle
    assert len(log.lines) == 2


def test_memory_state_is_full_only_at_the_limit_under_a_refusing_policy() -> None:
    assert memory_state({"used_memory": 41, "maxmemory": 40, "maxmemory_policy": "noeviction"}).full
    assert not memory_state({"used_memory": 39, "maxmemory": 40, "maxmemory_policy": "noeviction"}).full
    assert not memory_state({"used_memory": 41, "maxmemory": 40, "maxmemory_policy": "allkeys-lru"}).full
    assert not memory_state({"used_memory": 41, "maxmemory": 0, "maxmemory_policy": "noeviction"}).full
