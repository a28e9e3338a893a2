"""The retry policy: what a failed TikTok call means for the work it carried, as one pure function.

Deliveries (worker.lane), audience creates and ownership checks (worker.lane_resolve, worker.creates) all ask
:func:`decide`; none of them writes its own rules. The decision depends only on its arguments (the error, the
work's failure history, the settings, the time, and a jitter draw), so every rule is tested without Redis,
TikTok or a clock.

- throttled: the whole token cools down (TikTok's ``Retry-After`` if it gave a usable one, at least
  ``TTA_THROTTLE_COOLDOWN``, never more than ``TTA_THROTTLE_COOLDOWN_MAX``), then the same work is tried
  again; never dead, and not counted as a failure of the work;
- transient: exponential backoff with jitter, counted from the first transient failure; once failures have
  gone on for the retry window, dead;
- auth: the destination pauses (no call with its token) and the work waits;
- permanent: dead, unless the request mixed audiences: then it is split (worker.lane bisects it by audience)
  so only the audience TikTok refuses goes dead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

from core.settings import Settings
from worker.tiktok.errors import AuthError, PermanentError, ThrottledError, TikTokError, TransientError

Verdict = Literal["throttled", "retry", "dead", "pause", "split"]


class FailureHistory(Protocol):
    """What the policy reads of the work that failed (a ledger record has both fields)."""

    failures: int  # transient failures so far
    failing_since: float | None  # when the first of them happened


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    retry_at: float | None = None  # epoch seconds; None for dead and split
    cooldown: float = 0.0  # seconds the token must rest (throttled only)
    # Fields of the failure history to store with the outcome (failures, failing_since).
    history: dict[str, object] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """The ledger status of the work after this decision."""
        return {"throttled": "retrying", "retry": "retrying", "pause": "paused"}.get(self.verdict,
                                                                                   self.verdict)


def throttle_cooldown(retry_after: float | None, settings: Settings) -> float:
    """Seconds to rest the token: TikTok's hint when it is a sane number, else the default; always within
    [TTA_THROTTLE_COOLDOWN, TTA_THROTTLE_COOLDOWN_MAX]. Absurd hints (1e16, inf, NaN) fall back to the cap."""
    cap = settings.throttle_cooldown_max
    floor = min(settings.throttle_cooldown, cap)
    if retry_after is None or not isinstance(retry_after, int | float) or math.isnan(retry_after):
        return floor
    if retry_after > cap or math.isinf(retry_after):
        return cap
    return max(floor, float(retry_after))


def backoff_delay(failures: int, base: float, cap: float, jitter: float = 0.5) -> float:
    """Exponential backoff: half fixed, half scaled by ``jitter`` (a draw in [0, 1]), so the retries of many
    batches spread out."""
    delay = min(cap, base * (2 ** max(0, min(failures, 64) - 1)))
    return delay / 2 + max(0.0, min(1.0, jitter)) * delay / 2


def decide(error: TikTokError, history: FailureHistory, settings: Settings, now: float, *,
           audiences: int = 1, jitter: float = 0.5) -> Decision:
    """What to do about ``error``, for work whose failures so far are ``history``, carrying rows of
    ``audiences`` audiences."""
    if isinstance(error, ThrottledError):
        cooldown = throttle_cooldown(error.retry_after, settings)
        return Decision("throttled", retry_at=now + cooldown, cooldown=cooldown)
    if isinstance(error, AuthError):
        return Decision("pause", retry_at=now + settings.pause_recheck)
    if isinstance(error, TransientError):
        failing_since = history.failing_since or now
        failures = history.failures + 1
        record: dict[str, object] = {"failures": failures, "failing_since": failing_since}
        if now - failing_since >= settings.retry_window:
            return Decision("dead", history=record)
        delay = backoff_delay(failures, settings.backoff_base, settings.backoff_max, jitter)
        return Decision("retry", retry_at=now + delay, history=record)
    if isinstance(error, PermanentError) and audiences > 1:
        return Decision("split")
    return Decision("dead")


class Stop(Exception):
    """A lane's drain ends early. ``at``: when the lane is due again (epoch seconds; 0 for as its work says);
    ``outcome`` says why (for logs and tests)."""

    def __init__(self, outcome: str, at: float = 0.0) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.at = at
