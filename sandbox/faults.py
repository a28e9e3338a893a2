"""Fault knobs and the decisions they drive: throttling, transient failures, latency, revoked tokens.

Knobs are set through ``POST /_sandbox/knobs`` and apply to /segment/mapping/ calls (``latency_ms`` and
``revoked_tokens`` to every API call). A faulted call never changes membership: the route applies a request
only when neither :meth:`FaultInjector.before_validation` nor :meth:`FaultInjector.after_validation`
returned a fault. Random choices come from a seeded generator, so a run with the same seed and the same call
order fails the same calls.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import MESSAGES, RATE_LIMITED, SERVICE_ERROR, SYSTEM_ERROR
from sandbox.state import token_id

FAIL_MODES: tuple[str, ...] = ("http500", "http503", "code50002", "code50000", "drop", "slow")
# "slow" is opt-in: it costs the client a timeout, which would make every default-knob test slow.
DEFAULT_FAIL_MODES: tuple[str, ...] = ("http500", "http503", "code50002", "code50000", "drop")


class KnobError(ValueError):
    """A knob setting that cannot be used; the message names the knob."""


@dataclass(frozen=True)
class Fault:
    """How to answer a faulted call.

    ``http_status`` is 200 when TikTok's envelope carries ``code``; a non-200 status is answered with a plain
    body and no envelope (``code`` None); ``drop`` closes the connection without any answer.
    """

    kind: str
    http_status: int
    code: int | None
    message: str
    delay: float = 0.0

    @property
    def drops_connection(self) -> bool:
        return self.kind == "drop"


@dataclass
class Knobs:
    throttle_first: int = 0
    qps_limit: int = 0  # 0: no limit
    fail_rate: float = 0.0
    fail_modes: tuple[str, ...] = DEFAULT_FAIL_MODES
    slow_seconds: float = 5.0
    latency_ms: float = 0.0
    fail_audiences: dict[str, int] = field(default_factory=dict)
    revoked_tokens: frozenset[str] = frozenset()
    http429_first: int = 0


def _number(name: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KnobError(f"{name}: expected a number, got {value!r}")
    if value < low or (high is not None and value > high):
        limit = f"from {low} to {high}" if high is not None else f">= {low}"
        raise KnobError(f"{name}: expected a value {limit}, got {value!r}")
    return float(value)


def _count(name: str, value: Any) -> int:
    number = _number(name, value, 0)
    if number != int(number):
        raise KnobError(f"{name}: expected a whole number, got {value!r}")
    return int(number)


def _fail_modes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise KnobError(f"fail_modes: expected a non-empty array, got {value!r}")
    unknown = [mode for mode in value if mode not in FAIL_MODES]
    if unknown:
        raise KnobError(f"fail_modes: unknown mode(s) {unknown!r}; expected some of {', '.join(FAIL_MODES)}")
    return tuple(value)


def _fail_audiences(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise KnobError(f"fail_audiences: expected an object {{audience_id: code}}, got {value!r}")
    result: dict[str, int] = {}
    for audience_id, code in value.items():
        if isinstance(code, bool) or not isinstance(code, int) or code == 0:
            raise KnobError(f"fail_audiences[{audience_id!r}]: expected a non-zero TikTok code, got {code!r}")
        result[str(audience_id)] = code
    return result


def _tokens(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise KnobError(f"revoked_tokens: expected an array of tokens, got {type(value).__name__}")
    return frozenset(value)


# How each knob's JSON value becomes its stored value; ``null`` restores the default.
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "throttle_first": lambda v: _count("throttle_first", v),
    "qps_limit": lambda v: _count("qps_limit", v),
    "fail_rate": lambda v: _number("fail_rate", v, 0.0, 1.0),
    "fail_modes": _fail_modes,
    "slow_seconds": lambda v: _number("slow_seconds", v, 0.0),
    "latency_ms": lambda v: _number("latency_ms", v, 0.0),
    "fail_audiences": _fail_audiences,
    "revoked_tokens": _tokens,
    "http429_first": lambda v: _count("http429_first", v),
}
KNOB_NAMES: tuple[str, ...] = (*_PARSERS, "seed")


class FaultInjector:
    """Holds the knobs and decides, call by call, whether and how a call fails."""

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.knobs = Knobs()
        self.seed = seed
        self._rng = random.Random(seed)
        self._qps_second = -1
        self._qps_counts: dict[str, int] = {}

    def update(self, settings: Mapping[str, Any]) -> None:
        """Merge ``settings`` into the knobs; all-or-nothing, so a bad knob changes nothing."""
        unknown = sorted(set(settings) - set(KNOB_NAMES))
        if unknown:
            raise KnobError(f"unknown knob(s): {', '.join(unknown)}; known: {', '.join(KNOB_NAMES)}")
        parsed: dict[str, Any] = {}
        for name, value in settings.items():
            if name == "seed":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise KnobError(f"seed: expected an integer, got {value!r}")
                continue
            parsed[name] = getattr(Knobs(), name) if value is None else _PARSERS[name](value)
        for name, value in parsed.items():
            setattr(self.knobs, name, value)
        if "seed" in settings:
            self.seed = int(settings["seed"] or 0)
            self._rng = random.Random(self.seed)

    def describe(self) -> dict[str, Any]:
        """The knobs as JSON; revoked tokens appear as token ids, never raw."""
        k = self.knobs
        return {
            "throttle_first": k.throttle_first,
            "qps_limit": k.qps_limit,
            "fail_rate": k.fail_rate,
            "fail_modes": list(k.fail_modes),
            "slow_seconds": k.slow_seconds,
            "latency_ms": k.latency_ms,
            "fail_audiences": dict(k.fail_audiences),
            "revoked_tokens": sorted(token_id(t) for t in k.revoked_tokens),
            "http429_first": k.http429_first,
            "seed": self.seed,
        }

    def is_revoked(self, token: str) -> bool:
        return token in self.knobs.revoked_tokens

    async def delay(self) -> None:
        """The configured latency, added to every API call."""
        if self.knobs.latency_ms > 0:
            await asyncio.sleep(self.knobs.latency_ms / 1000.0)

    def over_qps(self, token: str) -> bool:
        """Count a call of ``token`` toward its second's budget (every call counts, throttled or not, as
        TikTok's does, whatever the endpoint), and tell whether it exceeds ``qps_limit``."""
        second = int(self._clock())
        if second != self._qps_second:
            self._qps_second = second
            self._qps_counts = {}
        calls_this_second = self._qps_counts.get(token, 0) + 1
        self._qps_counts[token] = calls_this_second
        return bool(self.knobs.qps_limit) and calls_this_second > self.knobs.qps_limit

    def before_validation(self, token: str) -> Fault | None:
        """Throttling decisions, taken before the body is read, as a gateway would."""
        knobs = self.knobs
        over_qps = self.over_qps(token)

        if knobs.http429_first > 0:
            knobs.http429_first -= 1
            return Fault("http429", 429, None, "Too Many Requests")
        if knobs.throttle_first > 0:
            knobs.throttle_first -= 1
            return Fault("throttle_first", 200, RATE_LIMITED, MESSAGES[RATE_LIMITED])
        if over_qps:
            return Fault("qps_limit", 200, RATE_LIMITED, MESSAGES[RATE_LIMITED])
        return None

    def after_validation(self, audience_ids: str | list[str]) -> Fault | None:
        """Per-audience and random failures, for requests that were otherwise valid (a request naming several
        audiences fails if any of them is set to fail, as a whole)."""
        knobs = self.knobs
        for audience_id in [audience_ids] if isinstance(audience_ids, str) else audience_ids:
            code = knobs.fail_audiences.get(audience_id)
            if code is not None:
                message = MESSAGES.get(code, f"Sandbox-injected error {code} for audience {audience_id}.")
                return Fault("fail_audience", 200, code, message)
        # Draw only when failures are on, so turning them on and off does not shift the random sequence.
        if knobs.fail_rate > 0 and self._rng.random() < knobs.fail_rate:
            return self._fault_for(self._rng.choice(knobs.fail_modes))
        return None

    def _fault_for(self, mode: str) -> Fault:
        if mode == "http500":
            return Fault(mode, 500, None, "Internal Server Error")
        if mode == "http503":
            return Fault(mode, 503, None, "Service Unavailable")
        if mode == "code50000":
            return Fault(mode, 200, SYSTEM_ERROR, MESSAGES[SYSTEM_ERROR])
        if mode == "code50002":
            return Fault(mode, 200, SERVICE_ERROR, MESSAGES[SERVICE_ERROR])
        if mode == "drop":
            return Fault(mode, 0, None, "connection closed without an answer")
        # "slow": the answer comes too late to be useful and says nothing was applied, so the only correct
        # client behaviour is to give up on it (timeout) and send the request again.
        return Fault(mode, 200, SERVICE_ERROR, MESSAGES[SERVICE_ERROR], delay=self.knobs.slow_seconds)
