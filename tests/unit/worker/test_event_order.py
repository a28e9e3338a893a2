"""Per user, the latest event wins within a batch, whatever order the operations arrived in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.batching import collapse
from worker.event_order import latest_per_user, order_key, stamp, tie_break
from worker.operations import AAID_SHA256, IDFA_SHA256, PackedOperation

ACCEPTED = 1_765_000_000_000


def op(action: str, user: int, event_ms: int = 0, message_id: str = "") -> PackedOperation:
    return PackedOperation(action, f"{user:064x}", "", "", "", event_ms, message_id)  # type: ignore[arg-type]


def test_the_latest_event_wins_whatever_the_arrival_order() -> None:
    exit_ = op("delete", 1, 2_000, "m-exit")
    entry = op("add", 1, 1_000, "m-entry")

    assert latest_per_user([exit_, entry], ACCEPTED) == [exit_]
    assert latest_per_user([entry, exit_], ACCEPTED) == [exit_]


def test_events_of_the_same_millisecond_are_ordered_by_message_id() -> None:
    first, second = sorted(["msg-a", "msg-b"], key=tie_break)
    earlier, later = op("add", 1, 5_000, first), op("delete", 1, 5_000, second)

    assert latest_per_user([later, earlier], ACCEPTED) == [later]
    assert latest_per_user([earlier, later], ACCEPTED) == [later]


def test_a_missing_event_time_is_the_acceptance_time() -> None:
    timed = op("add", 1, ACCEPTED + 10, "m1")
    untimed = op("delete", 1)  # accepted at ACCEPTED: older than the timed event

    assert latest_per_user([untimed, timed], ACCEPTED) == [timed]
    assert latest_per_user([timed, untimed], ACCEPTED) == [timed]
    # One acceptance time per operation: the untimed one accepted after the timed event happened wins.
    assert latest_per_user([timed, untimed], [ACCEPTED, ACCEPTED + 20]) == [untimed]


def test_a_full_tie_keeps_the_later_arrival() -> None:
    # Operations without event time or message id, accepted in the same millisecond: arrival order decides.
    assert latest_per_user([op("add", 1), op("delete", 1)], ACCEPTED) == [op("delete", 1)]
    assert latest_per_user([op("delete", 1), op("add", 1)], ACCEPTED) == [op("add", 1)]


def test_kept_operations_keep_their_order_and_other_users_are_untouched() -> None:
    ops = [op("add", 1, 10, "a"), op("add", 2, 30, "b"), op("delete", 1, 5, "c"), op("delete", 3, 1, "d"),
           op("delete", 2, 40, "e")]

    assert latest_per_user(ops, ACCEPTED) == [ops[0], ops[3], ops[4]]


def test_different_identifiers_are_different_users() -> None:
    email_only = PackedOperation("add", "e" * 64, "", "", "", 10, "a")
    with_phone = PackedOperation("delete", "e" * 64, "f" * 64, "", "", 20, "b")
    idfa = PackedOperation("add", "", "", "c" * 64, IDFA_SHA256, 30, "c")
    aaid = PackedOperation("delete", "", "", "c" * 64, AAID_SHA256, 40, "d")
    ops = [email_only, with_phone, idfa, aaid]

    assert latest_per_user(ops, ACCEPTED) == ops


def test_acceptance_times_must_match_the_operations() -> None:
    with pytest.raises(ValueError, match="2 acceptance times for 3 operations"):
        latest_per_user([op("add", 1), op("add", 1), op("add", 2)], [1, 2])


def test_stamp_fills_only_unknown_event_times() -> None:
    ops = [op("add", 1, 7, "a"), op("delete", 2)]

    assert stamp(ops, [100, 200]) == [ops[0], op("delete", 2, 200)]
    assert stamp(ops, 300) == [ops[0], op("delete", 2, 300)]


def test_order_keys_sort_like_event_time_then_tie_break() -> None:
    assert order_key(999, "z") < order_key(1_000, "a")
    assert (order_key(1_000, "msg-a") < order_key(1_000, "msg-b")) == (tie_break("msg-a") < tie_break("msg-b"))
    assert order_key(1_000, "") < order_key(1_000, "any")  # no message id sorts first
    assert order_key(-5, "") == order_key(0, "")
    assert {len(order_key(ms, "x")) for ms in (0, 1_765_000_000_000, 10**20)} == {25}


untimed_ops = st.lists(st.tuples(st.sampled_from(["add", "delete"]), st.integers(0, 5)), max_size=40)


@given(untimed_ops)
def test_without_event_times_it_is_the_old_last_arrival_collapse(pairs: list[tuple[str, int]]) -> None:
    ops = [op(action, user) for action, user in pairs]
    accepted = [ACCEPTED + index // 3 for index in range(len(ops))]  # several operations per millisecond

    assert latest_per_user(ops, accepted) == collapse(ops)


timed_ops = st.lists(st.tuples(st.sampled_from(["add", "delete"]), st.integers(0, 4), st.integers(0, 3),
                               st.sampled_from(["", "a", "b", "c"])), max_size=40)


@given(timed_ops, st.integers(0, 5))
def test_each_user_keeps_its_latest_operation_by_time_then_message_id_then_arrival(
        drawn: list[tuple[str, int, int, str]], accepted: int) -> None:
    ops = [op(action, user, ms, message_id) for action, user, ms, message_id in drawn]  # ms 0: accepted

    def rank(index: int) -> tuple[int, str, int]:
        return (ops[index].event_ms or accepted, tie_break(ops[index].message_id), index)

    latest = {}
    for index, one in enumerate(ops):
        if one.email not in latest or rank(index) > rank(latest[one.email]):
            latest[one.email] = index
    assert latest_per_user(ops, accepted) == [ops[index] for index in sorted(latest.values())]
