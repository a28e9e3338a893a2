"""Admin routes, through SandboxAdmin: state, members, the call log, seeding audiences and tokens, reset."""

from __future__ import annotations

import pytest

from sandbox import SandboxAdmin, SandboxAdminError
from sandbox.config import SandboxConfig
from sandbox.state import SandboxState, token_id
from tests.support.sandbox import ADVERTISER, TOKEN, Api, sha

CALL_FIELDS = {
    "seq", "time", "token_id", "advertiser_id", "audience_id", "action", "rows",
    "code", "http_status", "fault", "request_id", "message",
}


def test_state_shows_audiences_with_their_size_and_the_counters(api: Api, audience: str) -> None:
    api.add(audience, "a@x.com", "b@x.com")

    state = api.admin.state()

    assert state["audiences"][audience] == {
        "advertiser_id": ADVERTISER, "name": "test audience", "size": 2, "by_type": {"EMAIL_SHA256": 2}
    }
    counters = state["counters"]
    assert counters["mapping_calls"] == 1
    assert counters["mapping_ok"] == 1
    assert counters["rows_ok"] == 2
    assert counters["create_calls"] == 0
    assert counters["mapping_codes"] == {"0": 1}


def test_members_are_sorted_type_and_digest_strings(api: Api, audience: str) -> None:
    api.add(audience, "b@x.com", "a@x.com")

    expected = sorted([f"EMAIL_SHA256:{sha('a@x.com')}", f"EMAIL_SHA256:{sha('b@x.com')}"])
    assert api.admin.members(audience) == expected


def test_members_of_an_unknown_audience_is_a_404(api: Api) -> None:
    with pytest.raises(SandboxAdminError) as missing:
        api.admin.members("404404")

    assert missing.value.status == 404


def test_calls_are_logged_in_order_and_can_be_read_from_a_sequence_number(api: Api, audience: str) -> None:
    api.add(audience, "a@x.com")
    api.add(audience, "a@x.com", action="delete")
    api.add(audience, "b@x.com", token="bad")

    calls = api.admin.calls()

    assert [c["seq"] for c in calls] == [1, 2, 3]
    assert all(set(c) >= CALL_FIELDS for c in calls)
    assert [(c["action"], c["code"]) for c in calls] == [("add", 0), ("delete", 0), (None, 40105)]
    assert calls[0]["token_id"] == token_id(TOKEN)
    assert calls[0]["advertiser_id"] == ADVERTISER
    assert [c["seq"] for c in api.admin.calls(since=2)] == [3]


def test_seed_audience_can_choose_the_id_once(api: Api) -> None:
    assert api.admin.seed_audience(ADVERTISER, "legacy", audience_id="1234345") == "1234345"

    with pytest.raises(SandboxAdminError) as duplicate:
        api.admin.seed_audience(ADVERTISER, "again", audience_id="1234345")

    assert duplicate.value.status == 409
    assert api.add("1234345", "a@x.com").code == 0


def test_reset_clears_audiences_calls_counters_and_knobs(api: Api, audience: str) -> None:
    api.add(audience, "a@x.com")
    api.admin.knobs(throttle_first=5)

    api.admin.reset()

    state = api.admin.state()
    assert state["audiences"] == {}
    assert state["counters"]["mapping_calls"] == 0
    assert api.admin.calls() == []
    assert api.admin.knobs()["throttle_first"] == 0


def test_an_unreachable_sandbox_is_a_clear_error() -> None:
    admin = SandboxAdmin("http://127.0.0.1:9", timeout=1)

    assert admin.healthy() is False
    with pytest.raises(SandboxAdminError, match="cannot reach"):
        admin.state()


def test_the_call_log_is_bounded_but_sequence_numbers_keep_counting() -> None:
    state = SandboxState(SandboxConfig(call_log_limit=3))
    for _ in range(5):
        state.record_mapping_call(
            token=None, advertiser_id=None, audience_id=None, action=None, rows=0, code=40105,
            http_status=200, fault=None, request_id="r", message="",
        )

    assert [c["seq"] for c in state.calls_since(0)] == [3, 4, 5]
    assert state.counters["mapping_calls"] == 5
