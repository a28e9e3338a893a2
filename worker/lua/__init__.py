"""The Lua scripts the workers and intake run inside Redis, one file each, and the one way to load them.

Each script is atomic on the Redis side, which is what the callers rely on (a lane's acknowledgement fenced by
its lock, the fleet-wide rate limit, the event-time check of a batch); the file beside each says what it does.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def source(name: str) -> str:
    """The text of ``<name>.lua`` without its comment lines.

    Most scripts are sent as EVAL with every call (a registered script queued in a pipeline costs a SCRIPT
    EXISTS round trip of its own, and EVALSHA inside a transaction can fail alone after a Redis restart), so
    the text crosses the wire each time: the comments stay in the files, not on the wire.
    """
    text = resources.files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
