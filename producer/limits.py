"""Limits on what an event can turn into a Redis key or a TikTok audience.

Anything an event names becomes a key: the audience id or Engage audience key is part of its target's stream,
counter, lock and ledger keys, and an audience key or legacy audience name becomes a TikTok audience. Left
unbounded, one 14 MB webhook of 1 MiB audience keys grew Redis by 165 MB and created 14 TikTok audiences. So:

- **audience ids** (``external_audience_id``, a mapping's ``audience_id``) and **advertiser ids** are TikTok
  ids: digits only, at most :data:`ID_MAX_DIGITS` of them;
- **audience keys** (``context.personas.computation_key``, which names an audience still to be created) are
  Engage audience keys: letters, digits and ``_``, ``.`` or ``-``, at most :data:`AUDIENCE_KEY_MAX` characters
  (Engage makes them from the audience's name in snake case);
- **audience names** of legacy ``createAudience`` events: at most :data:`AUDIENCE_NAME_MAX` characters, no
  control characters.

Each check returns ``None`` or ``(code, reason)``, a rejection naming the limit, for the router to raise.
:class:`NewAudienceGate` also caps how many new audiences events introduce per destination per minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from worker.keys import TARGETS as TARGETS_KEY

ID_MAX_DIGITS = 32  # TikTok's ids are 19 digits today; room to grow, nothing like a megabyte
AUDIENCE_KEY_MAX = 150
AUDIENCE_NAME_MAX = 128  # TikTok cuts custom audience names at 128 characters

_AUDIENCE_KEY = re.compile(r"[A-Za-z0-9_.\-]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Problem = tuple[str, str] | None
# Seconds between two readings of the queue's known audiences for the new-audience cap.
KNOWN_AUDIENCES_REFRESH = 30.0

log = structlog.get_logger("producer.limits")


def id_problem(value: str, source: str) -> Problem:
    """Why ``value`` (from ``source``) is no TikTok id, or None."""
    if len(value) > ID_MAX_DIGITS:
        return "id_too_long", f"{source} is {len(value):,} characters long; ids have at most {ID_MAX_DIGITS} digits"
    if not (value.isascii() and value.isdigit()):
        return "invalid_field", f"{source} must be a TikTok id: digits only (at most {ID_MAX_DIGITS})"
    return None


def audience_key_problem(key: str, source: str = "context.personas.computation_key") -> Problem:
    """Why ``key`` cannot name an audience to create, or None."""
    if len(key) > AUDIENCE_KEY_MAX:
        return ("audience_key_too_long",
                f"{source} is {len(key):,} characters long; audience keys have at most {AUDIENCE_KEY_MAX}")
    if not _AUDIENCE_KEY.fullmatch(key):
        return ("invalid_field",
                f"{source} may hold only letters, digits, '_', '.' and '-' (as Engage audience keys do)")
    return None


def audience_name_problem(name: str, source: str = "custom_audience_name") -> Problem:
    """Why ``name`` cannot name a TikTok audience, or None."""
    if len(name) > AUDIENCE_NAME_MAX:
        return ("audience_name_too_long",
                f"{source} is {len(name):,} characters long; audience names have at most {AUDIENCE_NAME_MAX}")
    if _CONTROL.search(name):
        return "invalid_field", f"{source} must not contain control characters"
    return None


def target_problem(advertiser: str, audience: str, source: str) -> Problem:
    """Why (``advertiser``, ``audience``) cannot be a delivery target: ``audience`` is a TikTok id, or
    ``@<audience key>`` for an audience still to be created."""
    problem = id_problem(advertiser, "the advertiser id")
    if problem is not None:
        return problem
    if audience.startswith("@"):
        return audience_key_problem(audience[1:], source)
    return id_problem(audience, source)


class NewAudienceGate:
    """Caps how many audiences never seen before events may introduce, per destination per minute: each is a
    TikTok audience the worker will create, and a flood of made-up audience keys must not become thousands.

    An audience is known once this process has seen it, or once it is in the queue's target set (the HTTP
    intake teaches the gate those on start and every half minute, so a restart does not count every existing
    audience as new). The count is kept per intake process: with ``serve --workers N`` the fleet-wide cap
    is N times the setting."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 known_max: int = 100_000) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._known: set[str] = set()
        self._known_max = known_max
        self._minute: dict[str, tuple[int, int]] = {}  # destination -> (minute, new audiences in it)

    def learn(self, names: Iterable[str]) -> None:
        """Take ``names`` (target names, or create keys) as known: they are not new."""
        if len(self._known) >= self._known_max:
            self._known.clear()
        self._known.update(names)

    def problem(self, destination: str, name: str) -> Problem:
        """None when ``name`` is known or may be introduced now (then it is known from here on); otherwise the
        rejection naming the limit."""
        if name in self._known:
            return None
        minute = int(self._clock() // 60)
        seen_minute, count = self._minute.get(destination, (minute, 0))
        if seen_minute != minute:
            count = 0
        if count >= self.per_minute:
            return ("new_audience_limit",
                    f"destination {destination!r} has had {self.per_minute} new audiences in the last minute, the "
                    "most allowed (TTA_NEW_AUDIENCES_PER_MINUTE); the event names another one: retry later")
        self._minute[destination] = (minute, count + 1)
        self.learn((name,))
        return None


def teaching_known_audiences(gate: NewAudienceGate, client: Any) -> Callable[[Any], Any]:
    """An aiohttp cleanup context: while the app runs, teach ``gate`` the audiences the queue already knows
    (``client``'s target set, on start and then every :data:`KNOWN_AUDIENCES_REFRESH` seconds), so existing
    audiences never count as new."""

    async def teach_forever() -> None:
        while True:
            try:
                async for name in client.sscan_iter(TARGETS_KEY, count=1000):
                    gate.learn((name.decode() if isinstance(name, bytes) else name,))
            except Exception as exc:  # Redis away: the gate keeps what it knew; /readyz reports the outage
                log.debug("cannot read known audiences", error=type(exc).__name__)
            await asyncio.sleep(KNOWN_AUDIENCES_REFRESH)

    async def context(_: Any) -> Any:
        task = asyncio.ensure_future(teach_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context
