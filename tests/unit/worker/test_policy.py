"""The retry policy: one pure function decides what a failed call means for the work it carried."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from core.settings import Settings
from worker.policy import backoff_delay, decide, throttle_cooldown
from worker.tiktok.errors import AuthError, PermanentError, ThrottledError, TransientError

SETTINGS = Settings(TTA_THROTTLE_COOLDOWN=2, TTA_THROTTLE_COOLDOWN_MAX=300, TTA_RETRY_WINDOW=600,  # type: ignore[call-arg]
                    TTA_BACKOFF_BASE=1, TTA_BACKOFF_MAX=60, TTA_PAUSE_RECHECK=10)
NOW = 1_000_000.0


def fresh() -> SimpleNamespace:
    return SimpleNamespace(failures=0, failing_since=None)


@pytest.mark.parametrize(("retry_after", "cooldown"), [
    (None, 2.0), (0.5, 2.0), (30.0, 30.0), (300.0, 300.0), (99_999_999.0, 300.0), (1e16, 300.0),
    (math.inf, 300.0), (math.nan, 2.0),
])
def test_a_throttle_rests_the_token_between_the_default_and_the_cap(retry_after: float | None,
                                                                    cooldown: float) -> None:
    decision = decide(ThrottledError("slow down", code=40100, retry_after=retry_after), fresh(), SETTINGS, NOW)
    assert (decision.verdict, decision.cooldown, decision.retry_at) == ("throttled", cooldown, NOW + cooldown)
    assert decision.status == "retrying" and decision.history == {}  # not a failure of the work


def test_the_client_turns_unreadable_retry_after_into_none() -> None:
    from worker.tiktok.client import _retry_after

    assert [_retry_after(v) for v in ("12", "1e16", "soon", "-3", "inf", "nan", None)] == [
        12.0, 1e16, None, None, None, None, None]
    assert throttle_cooldown(_retry_after("1e16"), SETTINGS) == 300.0


def test_transient_failures_back_off_exponentially_within_the_window() -> None:
    history = SimpleNamespace(failures=3, failing_since=NOW - 100)
    decision = decide(TransientError("busy", code=50002), history, SETTINGS, NOW, jitter=1.0)
    assert decision.verdict == "retry" and decision.retry_at == NOW + 8.0
    assert decision.history == {"failures": 4, "failing_since": NOW - 100}
    assert decide(TransientError("busy"), fresh(), SETTINGS, NOW, jitter=0.0).retry_at == NOW + 0.5


def test_transient_failures_past_the_window_are_dead() -> None:
    history = SimpleNamespace(failures=9, failing_since=NOW - 600)
    assert decide(TransientError("busy", http_status=503), history, SETTINGS, NOW).verdict == "dead"


def test_an_auth_answer_pauses() -> None:
    decision = decide(AuthError("revoked", code=40105), fresh(), SETTINGS, NOW)
    assert (decision.verdict, decision.status, decision.retry_at) == ("pause", "paused", NOW + 10)


def test_a_permanent_answer_kills_one_audience_and_splits_a_request_of_several() -> None:
    refused = PermanentError("audience not found", code=40002)
    assert decide(refused, fresh(), SETTINGS, NOW).verdict == "dead"
    assert decide(refused, fresh(), SETTINGS, NOW, audiences=3).verdict == "split"


def test_backoff_is_capped_and_never_overflows() -> None:
    assert backoff_delay(1_000_000, 1, 60, jitter=1.0) == 60.0
