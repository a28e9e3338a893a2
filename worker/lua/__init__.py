"""The Lua scripts the workers and intake run inside Redis, one file each, and the one way to load them.

Each script is atomic on the Redis side, which is what the callers rely on (a lane's acknowledgement fenced by
its lock, the fleet-wide rate limit, the event-time check of a batch); the file beside each says what it does.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

# A line ``--#include NAME`` in a script stands for the text of ``NAME.lua`` (shared local functions: Redis runs
# each script on its own, with nothing loaded beside it).
_INCLUDE = "--#include "


@cache
def source(name: str) -> str:
    """The text of ``<name>.lua``, its includes in place, without its comment lines.

    Most scripts are sent as EVAL with every call (a registered script queued in a pipeline costs a SCRIPT
    EXISTS round trip of its own, and EVALSHA inside a transaction can fail alone after a Redis restart), so
    the text crosses the wire each time: the comments stay in the files, not on the wire.
    """
    text = resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
    lines = [source(line[len(_INCLUDE):].strip()) if line.startswith(_INCLUDE) else line
             for line in text.splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith("--"))
