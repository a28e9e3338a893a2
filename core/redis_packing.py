"""Packing commands into the Redis protocol without redis-py's per-argument Python work.

redis-py hands every argument of every command through two Python generator steps (a memoryview check, then
its encoder) before hiredis packs the tuple in C. hiredis already takes ``str`` (as UTF-8), ``bytes``, ``int``
and ``float`` (as ``repr``), exactly as redis-py's encoder would turn them into bytes, so for those the Python
steps only cost time: about a third of a microsecond per argument, and a drain names several keys for each of
thousands of audiences in a round. :class:`DirectPacker` gives the argument tuple straight to hiredis and keeps
redis-py's own packer for whatever hiredis refuses (``bytearray``, ``memoryview``, ``bool``: redis-py's
errors and conversions stay as they were) and for a command name of several words (``"CLIENT SETNAME"``,
which redis-py splits).
"""

from __future__ import annotations

from typing import Any

from hiredis import pack_command  # a dependency: redis[hiredis]
from redis._parsers.encoders import Encoder
from redis.connection import HiredisRespSerializer, PythonRespSerializer

_BUFFER_CUTOFF = 6000  # redis-py's own, for the fallback's large-value path
_ENCODER = Encoder("utf-8", "strict", decode_responses=False)  # what every client of the project encodes with


class DirectPacker:
    """A redis-py ``command_packer`` (``Connection(command_packer=...)``): ``pack(*args)`` answers the command's
    bytes as a list, as redis-py's packers do."""

    def __init__(self) -> None:
        python = PythonRespSerializer(_BUFFER_CUTOFF, _ENCODER.encode)
        self._fallback = HiredisRespSerializer(python.pack, _ENCODER.encode)

    def pack(self, *args: Any) -> list[bytes]:
        name = args[0]
        if (" " not in name) if isinstance(name, str) else (b" " not in name):
            try:
                return [pack_command(args)]
            except TypeError:  # an argument hiredis does not take: redis-py converts or refuses it
                pass
        return self._fallback.pack(*args)


def packer_options() -> dict[str, Any]:
    """Connection options that install :class:`DirectPacker`."""
    return {"command_packer": DirectPacker()}
