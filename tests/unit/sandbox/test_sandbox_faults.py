"""Fault knobs: throttling answers 40100 or HTTP 429, transient failures answer 5xx, 50000/50002, a dropped
connection or a late 50002; none of them changes membership, and the same seed fails the same calls."""

from __future__ import annotations

import time

import pytest

from sandbox import SandboxAdminError
from sandbox.faults import FaultInjector
from tests.support.sandbox import TOKEN, Api, sha


def _wait_for_a_fresh_second() -> None:
    """Start at the beginning of a wall-clock second, so a handful of quick calls share it."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def test_throttle_first_answers_40100_to_the_next_n_mapping_calls(api: Api, audience: str) -> None:
    api.admin.knobs(throttle_first=2)

    codes = [api.add(audience, f"u{i}@x.com").code for i in range(3)]

    assert codes == [40100, 40100, 0]
    assert api.members(audience) == [f"EMAIL_SHA256:{sha('u2@x.com')}"]
    assert api.admin.knobs()["throttle_first"] == 0
    assert [c["fault"] for c in api.admin.calls()] == ["throttle_first", "throttle_first", None]


def test_http429_first_answers_http_429_with_retry_after(api: Api, audience: str) -> None:
    api.admin.knobs(http429_first=1)

    first = api.add(audience, "a@x.com")
    second = api.add(audience, "a@x.com")

    assert first.status == 429
    assert second.code == 0
    assert api.admin.calls()[0]["http_status"] == 429


def test_qps_limit_throttles_calls_above_the_limit_within_one_second(api: Api, audience: str) -> None:
    api.admin.knobs(qps_limit=2)
    _wait_for_a_fresh_second()

    codes = [api.add(audience, f"u{i}@x.com").code for i in range(3)]

    assert codes == [0, 0, 40100]
    assert api.admin.state()["audiences"][audience]["size"] == 2


def test_qps_limit_counts_every_call_of_the_token_not_only_mapping_calls(api: Api, audience: str) -> None:
    api.admin.knobs(qps_limit=2)
    _wait_for_a_fresh_second()
    query = {"advertiser_id": api.advertiser, "custom_audience_ids": f'["{audience}"]'}

    codes = [api.request("GET", "/dmp/custom_audience/get/", query=query).code for _ in range(2)]
    codes.append(api.add(audience, "u@x.com").code)

    assert codes == [0, 0, 40100]


def test_qps_limit_counts_per_token_and_per_wall_clock_second() -> None:
    now = [100.2]
    faults = FaultInjector(clock=lambda: now[0])
    faults.update({"qps_limit": 1})

    assert faults.before_validation("a") is None
    assert faults.before_validation("b") is None  # another token has its own budget
    throttled = faults.before_validation("a")
    assert throttled is not None and throttled.code == 40100
    now[0] = 101.0  # a new second, a new budget
    assert faults.before_validation("a") is None


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ("http500", 500, None),
        ("http503", 503, None),
        ("code50002", 200, 50002),
        ("code50000", 200, 50000),
        ("drop", 0, None),
        ("slow", 200, 50002),
    ],
)
def test_each_fail_mode_answers_as_configured_and_applies_nothing(
    api: Api, audience: str, mode: str, status: int, code: int | None
) -> None:
    api.admin.knobs(fail_rate=1.0, fail_modes=[mode], slow_seconds=0.2)

    started = time.monotonic()
    answer = api.add(audience, "a@x.com")
    elapsed = time.monotonic() - started

    assert answer.status == status
    if code is not None:
        assert answer.code == code
    if mode == "slow":
        assert elapsed >= 0.2
    assert api.members(audience) == []
    [call] = api.admin.calls()
    assert call["fault"] == mode
    assert api.admin.counters()["mapping_ok"] == 0


def test_the_sandbox_keeps_serving_after_a_dropped_connection(api: Api, audience: str) -> None:
    api.admin.knobs(fail_rate=1.0, fail_modes=["drop"])
    assert api.add(audience, "a@x.com").status == 0

    api.admin.knobs(fail_rate=0)

    assert api.add(audience, "a@x.com").code == 0


def test_fail_audiences_answers_the_given_code_for_that_audience_only(api: Api, audience: str) -> None:
    healthy = api.admin.seed_audience(api.advertiser, "healthy")
    api.admin.knobs(fail_audiences={audience: 40002})

    assert api.add(audience, "a@x.com").code == 40002
    assert api.add(healthy, "a@x.com").code == 0
    assert api.members(audience) == []


def test_latency_is_added_to_every_api_call(api: Api, audience: str) -> None:
    api.admin.knobs(latency_ms=150)

    started = time.monotonic()
    api.add(audience, "a@x.com")
    api.request("GET", "/user/info/")

    assert time.monotonic() - started >= 0.3


def test_the_same_seed_fails_the_same_calls(api: Api, audience: str) -> None:
    def outcomes() -> list[int]:
        api.admin.reset()
        target = api.admin.seed_audience(api.advertiser, "seeded")
        api.admin.knobs(seed=1234, fail_rate=0.5, fail_modes=["code50000", "code50002"])
        return [api.add(target, f"u{i}@x.com").code for i in range(20)]

    first, second = outcomes(), outcomes()

    assert first == second
    assert {0, 50000, 50002} <= set(first)


def test_bad_knobs_are_refused_and_change_nothing(api: Api) -> None:
    with pytest.raises(SandboxAdminError) as refused:
        api.admin.knobs(throttle_first=3, fail_rate=2)

    assert refused.value.status == 400
    assert "fail_rate" in refused.value.message
    assert api.admin.knobs()["throttle_first"] == 0

    with pytest.raises(SandboxAdminError, match="unknown knob"):
        api.admin.knobs(fail_everything=True)
    with pytest.raises(SandboxAdminError, match="fail_modes"):
        api.admin.knobs(fail_modes=["explode"])


def test_null_restores_a_knob_to_its_default(api: Api) -> None:
    api.admin.knobs(qps_limit=5, latency_ms=10)

    knobs = api.admin.knobs(qps_limit=None)

    assert knobs["qps_limit"] == 0
    assert knobs["latency_ms"] == 10


def test_revoked_tokens_are_shown_as_token_ids(api: Api) -> None:
    knobs = api.admin.knobs(revoked_tokens=[TOKEN])

    assert TOKEN not in knobs["revoked_tokens"]
    assert len(knobs["revoked_tokens"]) == 1
