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
:class:`NewAudienceGate` also caps how many new audiences events introduce per destination per minute, fleet-wide.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import structlog

from worker import lua
from worker.keys import PREFIX, legacy_created
from worker.keys import TARGETS as TARGETS_KEY

ID_MAX_DIGITS = 32  # TikTok's ids are 19 digits today; room to grow, nothing like a megabyte
AUDIENCE_KEY_MAX = 150
AUDIENCE_NAME_MAX = 128  # TikTok cuts custom audience names at 128 characters

_AUDIENCE_KEY = re.compile(r"[A-Za-z0-9_.\-]+", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

Problem = tuple[str, str] | None
# Audiences beyond the cap one request may ask Redis about (existing ones this process has not read from the
# target set yet are known there); past that, a request's further unknown audiences are refused unasked.
UNLEARNED_PER_REQUEST = 10_000
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


# Per destination and wall-clock minute, the audiences admitted as new (a set, so an audience two intake
# processes both introduce counts once). For each candidate: known when its known-key holds it (the target set
# for targets, the legacy-created marker for legacy creates) or this minute's set does; else admitted while the
# set is under the cap. Returns the names refused (worker/lua/admit_new_audiences.lua).
_ADMIT = lua.source("admit_new_audiences")


def new_audiences_key(destination: str, minute: int) -> str:
    """Set of the audiences ``destination`` introduced in wall-clock minute ``minute`` (fleet-wide)."""
    return f"{PREFIX}:new-audiences:{destination}:{minute}"


@dataclass
class PendingAudiences:
    """One request's audiences not known to this process: ``candidates`` (name -> destination) go to Redis
    once routing is done; ``refused`` are the ones Redis refused, rejected when the request is routed again."""

    candidates: dict[str, str] = field(default_factory=dict)
    refused: frozenset[str] = frozenset()
    per_destination: dict[str, int] = field(default_factory=dict)


_PENDING: ContextVar[PendingAudiences | None] = ContextVar("tta_pending_audiences", default=None)


class NewAudienceGate:
    """Caps how many audiences never seen before events may introduce, per destination per minute, across the
    fleet: each is a TikTok audience the worker will create, and a flood of made-up audience keys must not
    become thousands.

    Routing (synchronous, inside :meth:`collecting`) only notes the audiences this process does not know; the
    intake then asks Redis about all of them in one round trip (:meth:`admit` / :meth:`admit_async`), which
    counts each per destination and wall-clock minute in a set shared by every intake process, and routes
    the request again only when some were refused (then they are rejected naming the limit). Audiences in the
    queue's target set never count; those this process saw admitted, or read from the target set (the HTTP
    intake re-reads it every half minute), skip the round trip altogether. Outside :meth:`collecting`
    (routing without an intake) nothing is refused."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.time,
                 known_max: int = 100_000) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._known: set[str] = set()
        self._known_max = known_max

    def learn(self, names: Iterable[str]) -> None:
        """Take ``names`` (target names, or create keys) as known: they are not new."""
        if len(self._known) >= self._known_max:
            self._known.clear()
        self._known.update(names)

    @contextlib.contextmanager
    def collecting(self, refused: frozenset[str] = frozenset()) -> Iterator[PendingAudiences]:
        """Note, while routing inside this block, the audiences to ask Redis about; reject ``refused``."""
        pending = PendingAudiences(refused=refused)
        token = _PENDING.set(pending)
        try:
            yield pending
        finally:
            _PENDING.reset(token)

    def problem(self, destination: str, name: str) -> Problem:
        """None when ``name`` is known or noted for Redis to decide; the rejection naming the limit when Redis
        refused it, or when the request alone brings more new audiences than a minute allows."""
        if name in self._known:
            return None
        pending = _PENDING.get()
        if pending is None or name in pending.candidates:
            return None
        if name not in pending.refused:
            count = pending.per_destination.get(destination, 0)
            if count < self.per_minute + UNLEARNED_PER_REQUEST:  # bounds what one request asks Redis
                pending.per_destination[destination] = count + 1
                pending.candidates[name] = destination
                return None
        return ("new_audience_limit",
                f"destination {destination!r} has had {self.per_minute} new audiences in the last minute, the "
                "most allowed (TTA_NEW_AUDIENCES_PER_MINUTE); the event names another one: retry later")

    def _script_args(self, pending: PendingAudiences) -> tuple[list[str], list[Any]]:
        minute = int(self._clock() // 60)
        script_keys: list[str] = []
        names: list[str] = []
        for name, destination in pending.candidates.items():
            if name.startswith("create:"):
                _, advertiser, audience = name[len("create:"):].split("|", 2)
                script_keys.append(legacy_created(destination, advertiser, audience))
            else:
                script_keys.append(TARGETS_KEY)
            script_keys.append(new_audiences_key(destination, minute))
            names.append(name)
        return script_keys, [self.per_minute, 120, *names]

    def _settle(self, pending: PendingAudiences, raw: Iterable[Any]) -> frozenset[str]:
        refused = frozenset(n.decode() if isinstance(n, bytes) else str(n) for n in raw)
        self.learn(name for name in pending.candidates if name not in refused)
        return refused

    def admit(self, client: Any, pending: PendingAudiences) -> frozenset[str]:
        """Ask Redis (sync ``client``) about ``pending``'s candidates, one round trip; returns those refused."""
        script_keys, args = self._script_args(pending)
        return self._settle(pending, client.eval(_ADMIT, len(script_keys), *script_keys, *args))

    async def admit_async(self, client: Any, pending: PendingAudiences) -> frozenset[str]:
        """:meth:`admit` with a ``redis.asyncio`` client."""
        script_keys, args = self._script_args(pending)
        return self._settle(pending, await client.eval(_ADMIT, len(script_keys), *script_keys, *args))


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
