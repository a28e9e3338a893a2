"""Commands are packed into exactly the bytes redis-py's own packer makes, with its conversions and errors."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis._parsers.encoders import Encoder
from redis.connection import HiredisRespSerializer, PythonRespSerializer

from core.redis_client import LOCAL, redis_from_url
from core.redis_packing import DirectPacker

_ENCODE = Encoder("utf-8", "strict", decode_responses=False).encode
REDIS_PYS = HiredisRespSerializer(PythonRespSerializer(6000, _ENCODE).pack, _ENCODE)


@pytest.mark.parametrize("command", [
    ("SET", "key", "value"),
    ("SET", b"key", b"\x00\xff binary"),
    ("ZADD", "z", 1.5, "m", 0.1, "n", 1e20, "o", -3, "p", float("inf"), "q", 1 / 3, "r"),
    ("SET", "k", 10**30),
    ("SET", "kü", "vé ✓"),
    ("EVAL", "return 1", 0),
    (b"GET", "k"),
    ("CLIENT SETNAME", "name"),  # a command name of two words: split as redis-py does
    (b"CLIENT SETNAME", "name"),
    ("SET", bytearray(b"k"), memoryview(b"v")),  # types hiredis does not take: redis-py's conversion
    ("SET", "k", "x" * 100_000),
])
def test_every_command_packs_to_redis_pys_bytes(command: tuple[Any, ...]) -> None:
    assert b"".join(DirectPacker().pack(*command)) == b"".join(REDIS_PYS.pack(*command))


def test_a_bool_is_refused_as_redis_py_refuses_it() -> None:
    with pytest.raises(redis.DataError, match="bool"):
        DirectPacker().pack("SET", "k", True)


def test_clients_of_the_factory_pack_with_it() -> None:
    client = redis_from_url("redis://127.0.0.1:6390/0", LOCAL)
    assert isinstance(client.connection_pool.connection_kwargs["command_packer"], DirectPacker)

